"""CPU runtimes benchmark: eager torch against ONNX Runtime and OpenVINO, fp32 and int8.

For ViT-B/32 (open_clip ``ViT-B-32``, random init, seeded) and EfficientNet-Lite0 (the real
ImageNet weights), batch 32, all in one process and measured side by side (interleaved
rounds, best round kept, so a busy neighbour slows every variant alike):

* model only: ``ImagePipeline.forward_pixels`` on a pre-made batch of real photos;
* end to end: ``ImageEmbeddings.embed_images_array`` on JPEG files (the sample photos and
  their derived copies, cycled), decode threads included;
* cosine to eager torch fp32, per vector (min over the batch);
* near-duplicate recall@1 (Lite0): the 8 sample photos indexed, each of their 32 copies
  (crop, flip, half size, JPEG q35) must find its original first;
* tuning (ViT-B/32, model only): ORT with and without spin-waiting, OpenVINO LATENCY
  against THROUGHPUT hints.

Exports go to the runtime cache (``$IMGEMB_CACHE_DIR`` or ``--cache``); the first run
exports, later runs load. Export and quantisation times are printed.

``--default-vs`` measures the default instead: ``ImageEmbeddings(spec)`` with
``runtime="auto"`` against every fp32 runtime named explicitly (torch, ONNX Runtime,
OpenVINO), end to end on 1920x1080 JPEGs (``throughput.py``'s "web" corpus), the four
configurations interleaved round by round (rotating order, best round kept). The default
first makes its choice (``--after-s``, 0 by default: at its first batch, so the steady
state is what is timed; the one-off cost of the choice is printed apart), then its vectors
are compared with torch's on every file. Target: the default >= 0.9x the best, per model.

Usage::

    python benchmarks/runtimes.py --quick     # under ~4 min on 2 cores once exported
    python benchmarks/runtimes.py             # more images and rounds
    python benchmarks/runtimes.py --default-vs --quick   # default vs every fp32 runtime
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS: tuple[tuple[str, str], ...] = (
    ("torch", "fp32"),
    ("onnx", "fp32"),
    ("onnx", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
)


def make_encoder(model: str) -> Any:
    import torch

    from langchain_image_embeddings import create_encoder

    if model == "vit-b-32":
        torch.manual_seed(0)  # same random weights every run: the export cache stays valid
        encoder = create_encoder(
            "open_clip:ViT-B-32", pretrained=None, allow_random_weights=True, device="cpu"
        )
    else:
        encoder = create_encoder("timm:efficientnet_lite0", device="cpu")
    encoder.load()
    return encoder


def photo_files(folder: Path) -> tuple[list[str], list[str]]:
    from langchain_image_embeddings.samples import write_sample_photos

    if not (folder / "copies").is_dir():
        write_sample_photos(folder)
    originals = sorted(str(p) for p in folder.glob("*.jpg"))
    copies = sorted(str(p) for p in (folder / "copies").glob("*.jpg"))
    return originals, copies


def recall_at_1(originals: Any, copies: Any, copy_paths: list[str], names: list[str]) -> float:
    best = (copies @ originals.T).argmax(axis=1)
    hits = [Path(copy_paths[i]).name.startswith(names[j] + "-") for i, j in enumerate(best)]
    return sum(hits) / len(hits)


def bench_model(model: str, args: argparse.Namespace, photos: Path) -> dict[str, Any]:
    import numpy as np
    import torch

    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.encoders.runtimes import with_runtime

    started = time.perf_counter()
    base = make_encoder(model)
    originals, copies = photo_files(photos)
    files = list(itertools.islice(itertools.cycle(originals + copies), args.images))
    embeddings: dict[tuple[str, str], ImageEmbeddings] = {}
    setup: dict[str, float] = {}
    for runtime, precision in VARIANTS:
        encoder = with_runtime(base, runtime, precision=precision, cache_dir=args.cache)
        embeddings[(runtime, precision)] = ImageEmbeddings(
            encoder, device="cpu", batch_size=args.batch_size, num_workers=args.workers
        )
    ref_pipe = embeddings[("torch", "fp32")].pipeline()
    batch = torch.stack(
        [ref_pipe.load_and_preprocess(p) for p in itertools.islice(itertools.cycle(files), 32)]
    )[: args.batch_size]
    vectors: dict[tuple[str, str], Any] = {}
    for variant, emb in embeddings.items():  # first call: export / load, and warm up
        t0 = time.perf_counter()
        vectors[variant] = emb.pipeline().forward_pixels(batch)
        setup["/".join(variant)] = time.perf_counter() - t0
    model_rate: dict[tuple[str, str], float] = {}
    e2e_rate: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for variant, emb in embeddings.items():
            pipe = emb.pipeline()
            t0 = time.perf_counter()
            for _ in range(args.iters):
                pipe.forward_pixels(batch)
            rate = args.iters * len(batch) / (time.perf_counter() - t0)
            model_rate[variant] = max(model_rate.get(variant, 0.0), rate)
        for variant, emb in embeddings.items():
            t0 = time.perf_counter()
            emb.embed_images_array(files)
            rate = len(files) / (time.perf_counter() - t0)
            e2e_rate[variant] = max(e2e_rate.get(variant, 0.0), rate)
    ref = vectors[("torch", "fp32")]
    rows = []
    names = [Path(p).stem for p in originals]
    for variant, emb in embeddings.items():
        cosine = (vectors[variant] * ref).sum(axis=1)
        row: dict[str, Any] = {
            "model": model,
            "runtime": variant[0],
            "precision": variant[1],
            "model_img_s": round(model_rate[variant], 2),
            "model_x": round(model_rate[variant] / model_rate[("torch", "fp32")], 2),
            "e2e_img_s": round(e2e_rate[variant], 2),
            "e2e_x": round(e2e_rate[variant] / e2e_rate[("torch", "fp32")], 2),
            "cos_min": float(np.min(cosine)),
            "cos_mean": float(np.mean(cosine)),
            "first_call_s": round(setup["/".join(variant)], 1),
        }
        if model == "lite0":
            row["recall_at_1"] = recall_at_1(
                emb.embed_images_array(originals), emb.embed_images_array(copies), copies, names
            )
        rows.append(row)
    tuning = tune(base, embeddings, batch, args) if model == "vit-b-32" and args.tune else {}
    return {"rows": rows, "tuning": tuning, "seconds": time.perf_counter() - started}


def tune(base: Any, embeddings: dict[Any, Any], batch: Any, args: argparse.Namespace) -> Any:
    """Model-only rates of alternative session settings, interleaved with the defaults."""
    from langchain_image_embeddings.encoders.runtimes import onnx as ort_rt
    from langchain_image_embeddings.encoders.runtimes import openvino as ov_rt

    threads = args.threads
    ort_entry = embeddings[("onnx", "fp32")].encoder._runtime.entries["image"]
    ov_entry = ort_entry  # the same exported ONNX file feeds OpenVINO
    array = batch.contiguous().numpy()
    sessions = {
        "onnx fp32, no spin (default)": ort_rt.OnnxSession(
            ort_entry.path / "model.onnx", threads=threads
        ),
        "onnx fp32, spin-wait": ort_rt.OnnxSession(
            ort_entry.path / "model.onnx", threads=threads, spin=True
        ),
        "openvino fp32, LATENCY (default)": ov_rt.OpenVinoSession(
            ov_entry.path / "model.onnx", threads=threads
        ),
        "openvino fp32, THROUGHPUT": ov_rt.OpenVinoSession(
            ov_entry.path / "model.onnx", threads=threads, hint="THROUGHPUT"
        ),
    }
    rates: dict[str, float] = {}
    for session in sessions.values():
        session.run(array)
    for _ in range(args.rounds):
        for name, session in sessions.items():
            t0 = time.perf_counter()
            for _ in range(args.iters):
                session.run(array)
            rate = args.iters * len(array) / (time.perf_counter() - t0)
            rates[name] = round(max(rates.get(name, 0.0), rate), 2)
    return rates


FP32_RUNTIMES = ("torch", "onnx", "openvino")


def default_embeddings(model: str, args: argparse.Namespace) -> Any:
    """What a user gets from ``ImageEmbeddings(spec)``: the default ``runtime="auto"``."""
    import torch

    from langchain_image_embeddings import ImageEmbeddings

    if model == "vit-b-32":
        torch.manual_seed(0)  # the weights of make_encoder: the same export serves both
        spec = "open_clip:ViT-B-32"
        kwargs: dict[str, Any] = {"pretrained": None, "allow_random_weights": True}
    else:
        spec, kwargs = "timm:efficientnet_lite0", {}
    embeddings = ImageEmbeddings(
        spec, model_kwargs=kwargs, device="cpu", batch_size=args.batch_size,
        num_workers=args.workers,
    )  # fmt: skip
    assert embeddings.runtime == "auto"
    embeddings.encoder.load()  # the random init happens here, under the seed
    return embeddings


def bench_default(model: str, args: argparse.Namespace, files: list[str]) -> dict[str, Any]:
    """The default against each fp32 runtime, end to end, interleaved."""
    import numpy as np

    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.encoders.runtimes import with_runtime

    started = time.perf_counter()
    base = make_encoder(model)
    configs: dict[str, Any] = {}
    first_call: dict[str, float] = {}
    for runtime in FP32_RUNTIMES:
        encoder = with_runtime(base, runtime, cache_dir=args.cache)
        configs[runtime] = ImageEmbeddings(
            encoder, device="cpu", batch_size=args.batch_size, num_workers=args.workers
        )
    default = default_embeddings(model, args)
    configs["default"] = default
    vectors: dict[str, Any] = {}
    for name, emb in configs.items():  # exports / loads, the default's choice, warm-up
        t0 = time.perf_counter()
        vectors[name] = emb.embed_images_array(files[: args.batch_size])
        first_call[name] = time.perf_counter() - t0
    report = default.runtime_report()
    rates: dict[str, float] = {}
    names = list(configs)
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            out = configs[name].embed_images_array(files)
            rate = len(files) / (time.perf_counter() - t0)
            rates[name] = max(rates.get(name, 0.0), rate)
            if round_ == 0:
                vectors[name] = out
    ref = vectors["torch"]
    best = max(FP32_RUNTIMES, key=lambda n: rates[n])
    rows = []
    for name in names:
        cosine = (vectors[name] * ref).sum(axis=1)
        rows.append(
            {
                "model": model,
                "config": name,
                "e2e_img_s": round(rates[name], 2),
                "x_torch": round(rates[name] / rates["torch"], 3),
                "x_best": round(rates[name] / rates[best], 3),
                "cos_min": float(np.min(cosine)),
                "first_call_s": round(first_call[name], 1),
            }
        )
    return {
        "rows": rows,
        "best": best,
        "default_runtime": report.active,
        "default_report": report.to_dict(),
        "seconds": time.perf_counter() - started,
    }


def print_default_table(results: dict[str, Any]) -> bool:
    header = (
        f"{'model':9} {'config':17} {'e2e img/s':>9} {'x torch':>7} {'x best':>6} "
        f"{'cos min':>8} {'1st call s':>10}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for result in results.values():
        for r in result["rows"]:
            label = r["config"]
            if label == "default":
                label = f"default ({result['default_runtime']})"
            print(
                f"{r['model']:9} {label:17} {r['e2e_img_s']:>9.2f} {r['x_torch']:>7.2f} "
                f"{r['x_best']:>6.2f} {r['cos_min']:>8.5f} {r['first_call_s']:>10.1f}"
            )
    print("\ntargets (end to end, 1920x1080 JPEGs):")
    for model, result in results.items():
        row = next(r for r in result["rows"] if r["config"] == "default")
        met = row["x_best"] >= 0.9 and row["cos_min"] >= 0.9999
        ok = ok and met
        measured = result["default_report"]["measurement"] or {}
        rates = measured.get("images_per_second", {})
        print(
            f"  {model}: default = {result['default_runtime']} at {row['x_best']:.2f}x the best "
            f"({result['best']}), cos min {row['cos_min']:.5f}  {'met' if met else 'MISSED'}"
        )
        print(f"    the choice: {result['default_report']['reason']}; model-only img/s {rates}")
    return ok


def main_default(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import throughput  # the corpora of the throughput benchmark

    os.environ["IMGEMB_AUTO_RUNTIME_AFTER_S"] = str(args.after_s)
    if args.cache:
        os.environ["IMGEMB_CACHE_DIR"] = args.cache  # the default's exports and choice
    corpus = Path(args.corpus) if args.corpus else throughput.DEFAULT_CACHE
    files = [str(p) for p in throughput.ensure_corpus(corpus, "web", args.images)]
    print(
        f"default vs every fp32 runtime: {len(files)} 1920x1080 JPEGs, batch "
        f"{args.batch_size}, {args.threads} threads, {args.rounds} rounds, "
        f"auto chooses after {args.after_s:g} s",
        flush=True,
    )
    results: dict[str, Any] = {}
    for model in args.models.split(","):
        model = model.strip()
        results[model] = bench_default(model, args, files)
        print(f"{model}: {results[model]['seconds']:.0f} s", flush=True)
    print()
    ok = print_default_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


def print_table(results: dict[str, Any]) -> bool:
    header = (
        f"{'model':9} {'runtime':9} {'prec':5} {'model img/s':>11} {'x torch':>7} "
        f"{'e2e img/s':>9} {'x torch':>7} {'cos min':>8} {'recall@1':>8} {'1st call s':>10}"
    )
    print(header)
    print("-" * len(header))
    for result in results.values():
        for r in result["rows"]:
            recall = f"{r['recall_at_1']:.3f}" if "recall_at_1" in r else "-"
            print(
                f"{r['model']:9} {r['runtime']:9} {r['precision']:5} {r['model_img_s']:>11.2f} "
                f"{r['model_x']:>7.2f} {r['e2e_img_s']:>9.2f} {r['e2e_x']:>7.2f} "
                f"{r['cos_min']:>8.5f} {recall:>8} {r['first_call_s']:>10.1f}"
            )
    for name, result in results.items():
        if result["tuning"]:
            print(f"\ntuning ({name}, model only, img/s):")
            for setting, rate in result["tuning"].items():
                print(f"  {setting:36} {rate:8.2f}")
    ok = True
    vit = {(r["runtime"], r["precision"]): r for r in results.get("vit-b-32", {}).get("rows", [])}
    lite = {(r["runtime"], r["precision"]): r for r in results.get("lite0", {}).get("rows", [])}
    if vit:
        best_fp32 = max(
            (r for k, r in vit.items() if k[1] == "fp32" and k[0] != "torch"),
            key=lambda r: r["model_x"],
        )
        best_int8 = max((r for k, r in vit.items() if k[1] == "int8"), key=lambda r: r["model_x"])
        fp32_ok = best_fp32["model_x"] >= 1.2
        int8_ok = best_int8["model_x"] >= 1.7 and best_int8["cos_min"] >= 0.995
        print("\ntargets (ViT-B/32, model only):")
        print(
            f"  best fp32 runtime >= 1.2x torch: {best_fp32['runtime']} "
            f"{best_fp32['model_x']:.2f}x  {'met' if fp32_ok else 'MISSED'}"
        )
        print(
            f"  int8 >= 1.7x torch at cos >= 0.995: {best_int8['runtime']} "
            f"{best_int8['model_x']:.2f}x cos {best_int8['cos_min']:.5f}  "
            f"{'met' if int8_ok else 'MISSED'}"
        )
        ok = fp32_ok and int8_ok
    if lite:
        ref = lite[("torch", "fp32")]["recall_at_1"]
        same = all(r["recall_at_1"] == ref for r in lite.values())
        print(
            f"  Lite0 near-duplicate recall@1 unchanged ({ref:.3f} in torch fp32): "
            f"{'met' if same else 'MISSED'}"
        )
        ok = ok and same
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds")
    parser.add_argument("--models", default="vit-b-32,lite0", help="vit-b-32, lite0 or both")
    parser.add_argument("--images", type=int, default=160, help="files for end to end")
    parser.add_argument("--iters", type=int, default=3, help="batches per model-only round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--workers", type=int, default=None, help="decode workers")
    parser.add_argument("--cache", default=None, help="runtime cache (default: IMGEMB_CACHE_DIR)")
    parser.add_argument("--no-tune", dest="tune", action="store_false", help="skip tuning")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--default-vs", action="store_true", help="the default (auto) vs every fp32 runtime"
    )
    parser.add_argument(
        "--after-s", type=float, default=0.0, help="--default-vs: auto's measure-after seconds"
    )
    parser.add_argument("--corpus", default=None, help="--default-vs: corpus cache folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.iters, args.rounds = min(args.images, 64), 1, 2

    import torch

    torch.set_num_threads(args.threads)
    if args.default_vs:
        return main_default(args)
    from langchain_image_embeddings.encoders.runtimes.export import EXPORTS

    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, "
        f"{args.images} files end to end, {args.rounds} rounds x {args.iters} batches",
        flush=True,
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            results[model] = bench_model(model.strip(), args, Path(tmp) / "photos")
            print(f"{model}: {results[model]['seconds']:.0f} s", flush=True)
    print(f"ONNX exports in this run: {EXPORTS['count']}\n")
    ok = print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
