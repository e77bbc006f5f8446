"""Throughput benchmark: the streaming pipeline against LangChain's ``OpenCLIPEmbeddings``.

Generates two corpora once (cached), then, on the same random-init ViT-B/32 weights, measures
images/s and peak RSS (each case in its own subprocess, so peaks are separate) for:

(a) the anchor: ``langchain_experimental`` ``OpenCLIPEmbeddings.embed_image``, model injected;
(b) a naive batched baseline: full decode + open_clip transform + batched forward;
(c) ours end to end: ``ImageEmbeddings.embed_images`` on the files;
(d) ours model only: the forward pass on pre-made tensors;

plus text (ours vs the anchor's one-by-one ``embed_documents``), peak RSS while streaming
a small and a large number of images, and a large fp32 matmul's GFLOP/s for scale.

The decode-worker sweep (``--sweep``) checks the self-sizing decode pool: for
EfficientNet-Lite0 (real weights) and ViT-B/32 (random init) on the 12 MP and 1080p JPEGs,
``ImageEmbeddings`` with the default ``num_workers=None`` against hand-picked
``num_workers`` of 1, 2, 4 and 8, measured side by side (interleaved rounds, best round
kept) in one subprocess per model and corpus; the target is default >= 0.9x the best.

Usage::

    python benchmarks/throughput.py --quick          # a few minutes on 2 cores
    python benchmarks/throughput.py                  # the full run (200 + 400 images, 2,000 for RSS)
    python benchmarks/throughput.py --sweep --quick  # only the decode-worker sweep, ~5 min
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VIT_B32_GFLOP = 8.7  # per 224x224 image, forward pass
DEFAULT_CACHE = (
    Path(
        os.environ.get("IMGEMB_BENCH_CACHE", Path.home() / ".cache" / "langchain-image-embeddings")
    )
    / "throughput"
)

CORPORA = {
    # name: (size, JPEG quality)
    "phone": ((4000, 3000), 90),
    "web": ((1920, 1080), 85),
}


# -- corpora ---------------------------------------------------------------------------------------
def _make_image(base: Any, size: tuple[int, int], seed: int) -> Any:
    """A photo-like variant of a real photo: random crop, flip, rotation, colour, resize."""
    import numpy as np
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(seed)
    w, h = base.size
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = base.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.rotate(
        float(rng.uniform(-8, 8)), resample=Image.Resampling.BILINEAR, expand=False
    )
    image = ImageEnhance.Color(image).enhance(float(rng.uniform(0.7, 1.3)))
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.8, 1.2)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    noise = rng.normal(0, 3, size=(size[1], size[0], 3))  # sensor-like noise: realistic JPEG sizes
    arr = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def ensure_corpus(cache: Path, name: str, count: int) -> list[Path]:
    """Create (once) and list ``count`` images of corpus ``name``."""
    from langchain_image_embeddings.samples import sample_photos

    size, quality = CORPORA[name]
    folder = cache / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}-{i:04d}.jpg" for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if missing:
        bases = [p.convert("RGB") for p in sample_photos().values()]
        print(
            f"generating {len(missing)} {name} images {size[0]}x{size[1]} q{quality} ...",
            file=sys.stderr,
        )
        for i in missing:
            image = _make_image(
                bases[i % len(bases)], size, seed=zlib.crc32(f"{name}-{i}".encode())
            )
            tmp = paths[i].with_suffix(".tmp")
            image.save(tmp, format="JPEG", quality=quality)
            tmp.replace(paths[i])
    return paths


# -- the model -------------------------------------------------------------------------------------
def load_encoder(cache: Path) -> Any:
    """ViT-B/32 with random weights, identical across subprocesses (saved once)."""
    import torch

    from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder

    torch.manual_seed(0)
    encoder = OpenCLIPEncoder("ViT-B-32", pretrained=None, allow_random_weights=True)
    encoder.load()
    weights = cache / "vit-b-32-random.pt"
    if weights.exists():
        state = torch.load(weights, weights_only=True, mmap=True)
        encoder.module.load_state_dict(state)
        del state
    else:
        torch.save(encoder.module.state_dict(), weights)
    return encoder


def make_anchor(encoder: Any) -> Any:
    import open_clip
    from langchain_experimental.open_clip import OpenCLIPEmbeddings

    # Bypass the validator (it would download ViT-H-14): inject our model and transform.
    return OpenCLIPEmbeddings.model_construct(
        model=encoder.module,
        preprocess=encoder.preprocess,
        tokenizer=open_clip.get_tokenizer("ViT-B-32"),
        model_name="ViT-B-32",
        checkpoint="random",
    )


def peak_rss_mb() -> float:
    """The process's high-water mark (includes model creation)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Peak RSS during a phase, sampled every 5 ms (ru_maxrss cannot be reset)."""

    def __init__(self) -> None:
        import threading

        self.peak = current_rss_mb()
        self.baseline = self.peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, current_rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())


# -- the decode-worker sweep -----------------------------------------------------------------------
SWEEP_MODELS = ("lite0", "vit-b-32")
SWEEP_WORKERS = (1, 2, 4, 8)


def run_sweep_case(args: argparse.Namespace) -> dict[str, Any]:
    """Default (self-sizing) decode pool vs fixed ``num_workers``, one model and corpus."""
    import torch

    from langchain_image_embeddings import ImageEmbeddings, create_encoder
    from langchain_image_embeddings.pipeline import _stream as pipeline_module

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    if args.model == "lite0":
        encoder = create_encoder("timm:efficientnet_lite0", device="cpu")
        encoder.load()
    else:
        encoder = load_encoder(cache)
    strs = [str(p) for p in ensure_corpus(cache, args.corpus, args.count)]
    ImageEmbeddings(encoder, device="cpu", num_workers=1).embed_images(strs[:4])  # warm-up
    configs: list[int | None] = [None, *SWEEP_WORKERS]
    rates: dict[str, list[float]] = {}
    decisions: list[list[tuple[int, int, str]]] = []
    for round_ in range(args.rounds):
        # Rotate the order each round so drift in the machine's load hits every config.
        shift = round_ % len(configs)
        for workers in configs[shift:] + configs[:shift]:
            pipeline_module._LAST_WORKERS.clear()  # the default starts cold every time
            emb = ImageEmbeddings(
                encoder, device="cpu", batch_size=args.batch_size, num_workers=workers
            )
            pipeline = emb.pipeline()
            start = time.perf_counter()
            rows = sum(len(batch.indices) for batch in pipeline.run(strs))
            elapsed = time.perf_counter() - start
            assert rows == len(strs)
            rates.setdefault("default" if workers is None else str(workers), []).append(
                rows / elapsed
            )
            if workers is None:
                decisions.append([(d.batch, d.workers, d.reason) for d in pipeline.stats.decisions])
    best = {key: max(values) for key, values in rates.items()}
    return {
        "model": args.model,
        "corpus": args.corpus,
        "images": len(strs),
        "rounds": args.rounds,
        "per_second": best,
        "all_rounds": rates,
        "default_decisions": decisions,
    }


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for model in SWEEP_MODELS:
        for corpus in ("phone", "web"):
            count = args.sweep_counts[(model, corpus)]
            results.append(spawn(args, "sweep", corpus, count, model=model, rounds=args.rounds))
    return results


def print_sweep(args: argparse.Namespace, results: list[dict[str, Any]]) -> bool:
    """Print the sweep table; True when every default reaches 0.9x the best fixed count."""
    print(
        f"\nDecode workers: default (sized by measurement) vs fixed num_workers, CPU fp32, "
        f"batch {args.batch_size}, {args.threads} torch threads, cpu_count={os.cpu_count()}, "
        f"best of {args.rounds} interleaved rounds"
    )
    header = "".join(f"{'w=' + str(w):>8s}" for w in SWEEP_WORKERS)
    print(f"{'model':10s} {'corpus':16s} {'images':>6s} {header} {'default':>8s} {'best':>5s} "
          f"{'ratio':>6s}  default's decisions (batch:workers)")  # fmt: skip
    ok = True
    for r in results:
        rates = r["per_second"]
        fixed = {w: rates[str(w)] for w in SWEEP_WORKERS}
        best_w = max(fixed, key=lambda w: fixed[w])
        ratio = rates["default"] / fixed[best_w]
        ok &= ratio >= 0.9
        size = "x".join(map(str, CORPORA[r["corpus"]][0]))
        cells = "".join(f"{fixed[w]:8.2f}" for w in SWEEP_WORKERS)
        steps = " ".join(f"{b}:{w}" for b, w, _ in r["default_decisions"][0])
        print(
            f"{r['model']:10s} {r['corpus'] + ' ' + size:16s} {r['images']:6d} {cells} "
            f"{rates['default']:8.2f} {'w=' + str(best_w):>5s} {ratio:6.2f}  {steps}"
        )
    print(f"target default >= 0.9x best fixed: {'met' if ok else 'MISSED'}")
    return ok


# -- one case, run in a subprocess -----------------------------------------------------------------
def run_case(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    if args.case == "sweep":
        return run_sweep_case(args)
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    encoder = load_encoder(cache)
    case, corpus = args.case, args.corpus
    result: dict[str, Any] = {"case": case, "corpus": corpus}

    from langchain_image_embeddings import ImageEmbeddings

    ours = ImageEmbeddings(
        encoder, device="cpu", batch_size=args.batch_size, num_workers=args.workers
    )
    if case in ("anchor", "naive", "ours"):
        paths = ensure_corpus(cache, corpus, args.count)
        strs = [str(p) for p in paths]
        # warm-up (one-time costs: allocator, oneDNN kernels) on two images
        ours.embed_images(strs[:2])
        anchor = make_anchor(encoder)
        with RssSampler() as rss:
            start = time.perf_counter()
            if case == "anchor":
                vectors = anchor.embed_image(strs)
            elif case == "naive":
                vectors = naive_batched(encoder, strs, args.batch_size)
            else:
                vectors = ours.embed_images(strs)
            elapsed = time.perf_counter() - start
        assert len(vectors) == len(strs)
        result.update(images=len(strs), seconds=elapsed, per_second=len(strs) / elapsed)
    elif case == "model":
        pipeline = ours.pipeline()
        pixels = torch.randn(args.batch_size, 3, 224, 224)
        pipeline.forward_pixels(pixels)  # warm-up
        batches = max(1, args.count // args.batch_size)
        with RssSampler() as rss:
            start = time.perf_counter()
            for _ in range(batches):
                pipeline.forward_pixels(pixels)
            elapsed = time.perf_counter() - start
        n = batches * args.batch_size
        result.update(images=n, seconds=elapsed, per_second=n / elapsed)
        result["gflops"] = result["per_second"] * VIT_B32_GFLOP
        result["matmul_gflops"] = matmul_gflops()
    elif case == "text":
        captions = [
            f"a photo of {adj} {noun} {place}"
            for adj, noun, place in itertools.islice(
                itertools.product(
                    [
                        "a small",
                        "a large",
                        "a red",
                        "a blurry",
                        "an old",
                        "a happy",
                        "a dark",
                        "a bright",
                    ],
                    [
                        "cat",
                        "dog",
                        "rocket",
                        "cup of coffee",
                        "astronaut",
                        "coin",
                        "galaxy",
                        "camera",
                    ],
                    ["on a sofa", "in space", "at night", "on a table", "outdoors", "in a lab"],
                ),
                args.count,
            )
        ]
        ours.embed_documents(captions[:4])
        rss = RssSampler()
        start = time.perf_counter()
        ours_vectors = ours.embed_documents(captions)
        t_ours = time.perf_counter() - start
        anchor = make_anchor(encoder)
        start = time.perf_counter()
        anchor_vectors = anchor.embed_documents(captions)
        t_anchor = time.perf_counter() - start
        cos = float(np.min(np.sum(np.asarray(ours_vectors) * np.asarray(anchor_vectors), axis=1)))
        result.update(
            texts=len(captions),
            ours_per_second=len(captions) / t_ours,
            anchor_per_second=len(captions) / t_anchor,
            min_cosine_vs_anchor=cos,
        )
    elif case == "stream":
        paths = ensure_corpus(cache, corpus, min(args.count, 400))
        strs = [str(p) for p in paths]

        def cycle(n: int) -> Iterator[str]:  # a lazy generator, never a list
            return itertools.islice(itertools.cycle(strs), n)

        ours.embed_images(strs[:2])  # warm-up
        with RssSampler() as rss:
            start = time.perf_counter()
            rows = 0
            for batch in ours.iter_image_batches(cycle(args.stream_count)):
                rows += len(batch)
            elapsed = time.perf_counter() - start
        result.update(images=rows, seconds=elapsed, per_second=rows / elapsed)
    # peak_rss_mb: peak during the measured phase; baseline: RSS before it (model loaded);
    # process_peak_rss_mb: the process's high-water mark, model creation included.
    result["peak_rss_mb"] = rss.peak
    result["baseline_rss_mb"] = rss.baseline
    result["process_peak_rss_mb"] = peak_rss_mb()
    return result


def naive_batched(encoder: Any, paths: list[str], batch_size: int) -> list[list[float]]:
    """Full decode + open_clip transform + batched forward, single-threaded."""
    import torch
    from PIL import Image

    module = encoder.module
    out: list[list[float]] = []
    for i in range(0, len(paths), batch_size):
        tensors = [
            encoder.preprocess(Image.open(p).convert("RGB")) for p in paths[i : i + batch_size]
        ]
        with torch.inference_mode():
            features = module.encode_image(torch.stack(tensors))
            features = torch.nn.functional.normalize(features, dim=-1)
        out.extend(features.tolist())
    return out


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


# -- the driver ------------------------------------------------------------------------------------
def spawn(
    args: argparse.Namespace, case: str, corpus: str, count: int, **extra: Any
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--case", case,
        "--corpus", corpus,
        "--count", str(count),
        "--cache", str(args.cache),
        "--threads", str(args.threads),
        "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{case}/{corpus} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  {case:7s} {corpus:6s} {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()})}",
        file=sys.stderr,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small corpora (a few minutes)")
    parser.add_argument("--phone", type=int, default=200, help="phone photos (4000x3000)")
    parser.add_argument("--web", type=int, default=400, help="web images (1920x1080)")
    parser.add_argument("--captions", type=int, default=256)
    parser.add_argument("--stream-small", type=int, default=200)
    parser.add_argument("--stream-large", type=int, default=2000)
    parser.add_argument("--model-images", type=int, default=128, help="images for (d)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--workers", type=int, default=None, help="decode workers (ours)")
    parser.add_argument("--skip-anchor", action="store_true", help="skip (a), the slowest case")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--sweep", action="store_true", help="only the decode-worker sweep")
    parser.add_argument("--skip-sweep", action="store_true", help="no decode-worker sweep")
    parser.add_argument("--rounds", type=int, default=2, help="sweep rounds (best kept)")
    # internal: one case in this process
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", default="web", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stream-count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="vit-b-32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.case:
        print(json.dumps(run_case(args)))
        return 0

    # Sweep sizes: several batches per run, so the sizer's start-up is part of the measurement.
    args.sweep_counts = {
        ("lite0", "phone"): 160, ("lite0", "web"): 256,
        ("vit-b-32", "phone"): 96, ("vit-b-32", "web"): 96,
    }  # fmt: skip
    if args.quick:
        args.phone, args.web, args.captions = 16, 32, 64
        args.stream_small, args.stream_large, args.model_images = 32, 320, 64
        args.sweep_counts = {
            ("lite0", "phone"): 96, ("lite0", "web"): 160,
            ("vit-b-32", "phone"): 64, ("vit-b-32", "web"): 64,
        }  # fmt: skip
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    import torch

    print(
        f"torch {torch.__version__}, {args.threads} threads, cpu_count={os.cpu_count()}",
        file=sys.stderr,
    )
    load_encoder(Path(args.cache))  # save the shared weights once
    if args.sweep:
        for (_, corpus), count in args.sweep_counts.items():
            ensure_corpus(Path(args.cache), corpus, count)
        sweep_results = sweep(args)
        ok = print_sweep(args, sweep_results)
        if args.json:
            Path(args.json).write_text(json.dumps({"sweep": sweep_results}, indent=2))
        return 0 if ok else 1
    ensure_corpus(Path(args.cache), "phone", max(args.phone, args.sweep_counts[("lite0", "phone")]))
    ensure_corpus(Path(args.cache), "web", max(args.web, min(args.stream_large, 400)))

    res: dict[str, Any] = {}
    res["model"] = spawn(args, "model", "none", args.model_images)
    for corpus, count in (("web", args.web), ("phone", args.phone)):
        cases = ["naive", "ours"] if args.skip_anchor else ["anchor", "naive", "ours"]
        for case in cases:
            res[f"{case}_{corpus}"] = spawn(args, case, corpus, count)
    res["text"] = spawn(args, "text", "none", args.captions)
    res["stream_small"] = spawn(args, "stream", "web", args.web, stream_count=args.stream_small)
    res["stream_large"] = spawn(args, "stream", "web", args.web, stream_count=args.stream_large)
    print_table(args, res)
    if not args.skip_sweep:
        res["sweep"] = sweep(args)
        print_sweep(args, res["sweep"])
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def print_table(args: argparse.Namespace, res: dict[str, Any]) -> None:
    d = res["model"]
    print(
        f"\nViT-B/32 (random init), CPU fp32, batch {args.batch_size}, {args.threads} torch threads"
    )
    print("peak RSS: during the measured phase (model loaded); +MB: over the RSS just before it")
    print(f"{'case':44s} {'images/s':>9s} {'peak RSS MB':>12s} {'+MB':>7s}")

    def row(label: str, r: dict[str, Any]) -> None:
        extra = r["peak_rss_mb"] - r["baseline_rss_mb"]
        print(f"{label:44s} {r['per_second']:9.2f} {r['peak_rss_mb']:12.0f} {extra:7.0f}")

    row("(d) ours, model only (pre-made tensors)", d)
    labels = {
        "anchor": "(a) anchor OpenCLIPEmbeddings.embed_image",
        "naive": "(b) naive batched (full decode)",
        "ours": "(c) ours, embed_images end to end",
    }
    for corpus, count in (("web", args.web), ("phone", args.phone)):
        size = "x".join(map(str, CORPORA[corpus][0]))
        print(f"-- {corpus} images: {count} x {size} JPEG")
        for case, label in labels.items():
            r = res.get(f"{case}_{corpus}")
            if r:
                row(label, r)
        c = res[f"ours_{corpus}"]["per_second"]
        ratios = [
            f"(c)/(d) = {c / d['per_second']:.2f}",
            f"(c)/(b) = {c / res[f'naive_{corpus}']['per_second']:.2f}",
        ]
        if f"anchor_{corpus}" in res:
            ratios.append(f"(c)/(a) = {c / res[f'anchor_{corpus}']['per_second']:.2f}")
        print("   " + ", ".join(ratios))
    t = res["text"]
    print(
        f"-- text, {t['texts']} captions: ours {t['ours_per_second']:.1f}/s, anchor one-by-one "
        f"{t['anchor_per_second']:.1f}/s, ratio {t['ours_per_second'] / t['anchor_per_second']:.1f}x "
        f"(min cosine {t['min_cosine_vs_anchor']:.5f})"
    )
    s, big = res["stream_small"], res["stream_large"]
    print(
        f"-- streaming peak RSS: {s['images']} images {s['peak_rss_mb']:.0f} MB "
        f"(+{s['peak_rss_mb'] - s['baseline_rss_mb']:.0f}), {big['images']} images "
        f"{big['peak_rss_mb']:.0f} MB (+{big['peak_rss_mb'] - big['baseline_rss_mb']:.0f}), "
        f"ratio {big['peak_rss_mb'] / s['peak_rss_mb']:.3f}; process high-water marks "
        f"{s['process_peak_rss_mb']:.0f} / {big['process_peak_rss_mb']:.0f} MB"
    )
    print(
        f"-- hardware: fp32 matmul {d['matmul_gflops']:.1f} GFLOP/s; (d) = {d['gflops']:.1f} GFLOP/s "
        f"({VIT_B32_GFLOP} GFLOP/image) = {d['gflops'] / d['matmul_gflops']:.0%} of matmul"
    )


if __name__ == "__main__":
    raise SystemExit(main())
