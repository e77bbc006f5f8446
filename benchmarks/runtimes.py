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

Usage::

    python benchmarks/runtimes.py --quick     # under ~4 min on 2 cores once exported
    python benchmarks/runtimes.py             # more images and rounds
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
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.iters, args.rounds = min(args.images, 64), 1, 2

    import torch

    torch.set_num_threads(args.threads)
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
