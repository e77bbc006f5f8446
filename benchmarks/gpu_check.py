"""GPU check: the CUDA code paths (device placement, autocast, pinned memory, GPU JPEG
decoding) are right and fast.

Run on a machine with a CUDA GPU, in one go (no network needed; weights are random or
shipped on PyPI; corpora are generated into a temporary folder):

    python benchmarks/gpu_check.py --out gpu.json        # ~2-4 min on one H200

and on any machine, to check the script itself (every section on the CPU, a few images):

    python benchmarks/gpu_check.py --dry-run

It prints, and writes as JSON (after every section, so a timeout keeps what was measured):
1. GPU JPEG decoding vs the CPU path: minimum cosine of ViT-B/32 (random weights) and
   EfficientNet-Lite0 (real weights) vectors on 1080p re-encoded real photos plus a PNG, a
   CMYK JPEG and a progressive JPEG; how many inputs the device decoded and how many fell
   back to the CPU;
2. end to end, ViT-B/32 fp16, default (self-sizing) decode workers, 1080p and 12 MP JPEGs,
   GPU decoding on and off: images/s, the decode workers chosen, the sizer's decisions
   (target on one H200: >= 3,000 img/s on 1080p with GPU decoding);
3. equivalence: CPU fp32 vs CUDA fp32 vectors (max abs diff), and CUDA fp16 / bf16 autocast
   vs CPU fp32 (minimum cosine), for the ViT-B/32-shaped CLIP and the real Lite0 weights;
4. the real Lite0 weights classify skimage's ``chelsea`` as a cat on the GPU;
5. ViT-B/32 model-only images/s at fp32 and fp16.

Exit status: 0 when every section ran, 1 when one failed (its error is in the JSON as
``<section>_error``), 2 without CUDA (and without ``--dry-run``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.devices import (
    autocast_context,
    resolve_precision,
    use_pinned_memory,
)
from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder
from langchain_image_embeddings.pipeline._gpu_decode import torchvision_can_decode
from langchain_image_embeddings.samples import sample_photos


def _cos_min(a: np.ndarray, b: np.ndarray) -> float:
    return _cos_sorted(a, b)[0]


def _cos_sorted(a: np.ndarray, b: np.ndarray) -> list[float]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return sorted(float(c) for c in (a * b).sum(1))


DEV = "cuda"


def _sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def _write(results: dict[str, object], out: str | None) -> None:
    """Write what we have so far: a timeout or a crash later keeps the earlier sections."""
    if out:
        Path(out).write_text(json.dumps(results, indent=2))


def _section(results: dict[str, object], out: str | None, name: str, fn: Any) -> None:
    """Run one section; record its failure instead of losing the sections after it."""
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # a device check must report, not stop, on a failure
        results[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    results[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
    print(f"[gpu_check] {name}: {results[f'{name}_seconds']} s", file=sys.stderr, flush=True)
    _write(results, out)


def _jpeg_corpus(
    directory: Path, photos: list[Image.Image], size: tuple[int, int], count: int, quality: int
) -> list[str]:
    """``count`` distinct JPEGs of ``size`` from the real photos (flipped/shifted variants),
    encoded in parallel (Pillow releases the GIL while encoding)."""
    from concurrent.futures import ThreadPoolExecutor

    directory.mkdir(parents=True, exist_ok=True)

    def make(i: int) -> str:
        base = photos[i % len(photos)]
        w, h = base.size
        dx, dy = (i // len(photos)) % 7, (i // len(photos) // 7) % 5
        image = base.crop((dx, dy, w - 6 + dx, h - 4 + dy)).resize(size, Image.Resampling.BICUBIC)
        if (i // len(photos)) % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = directory / f"{size[0]}x{size[1]}_{i:05d}.jpg"
        image.save(path, quality=quality)
        return str(path)

    with ThreadPoolExecutor(os.cpu_count() or 4) as pool:
        return list(pool.map(make, range(count)))


def _rate(emb: ImageEmbeddings, paths: list[str], warmup: list[str]) -> tuple[float, Any, Any]:
    """Images/s of ``emb`` end to end over ``paths`` (after a warm-up), with the pipeline's
    decode stats and the vectors."""
    pipeline = emb.pipeline()
    for _ in pipeline.run(warmup):
        pass
    pipeline = emb.pipeline()
    _sync()
    started = time.perf_counter()
    chunks = [batch.vectors for batch in pipeline.run(paths)]
    _sync()
    elapsed = time.perf_counter() - started
    return len(paths) / elapsed, pipeline.stats, np.concatenate(chunks)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=None, help="also write the results (JSON) here")
    parser.add_argument("--images", type=int, default=2048, help="1080p JPEGs end to end")
    parser.add_argument("--photos-12mp", type=int, default=256, help="12 MP JPEGs end to end")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--dry-run",
        "--cpu-dry-run",
        dest="dry_run",
        action="store_true",
        help="run every section on the CPU with a few images (checks the script, not speed)",
    )
    args = parser.parse_args()
    global DEV
    if args.dry_run:
        DEV, args.images, args.photos_12mp, args.batch_size = "cpu", 16, 6, 8
    elif not torch.cuda.is_available():
        print("no CUDA device (use --dry-run to check the script on a CPU)", file=sys.stderr)
        return 2
    results: dict[str, object] = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "gpu": torch.cuda.get_device_name(0) if DEV == "cuda" else "none (dry run)",
        "cpus": os.cpu_count(),
        "pinned_memory": use_pinned_memory(DEV),
        "gpu_decode_supported": torchvision_can_decode(DEV),
    }
    photos = [p.convert("RGB") for p in sample_photos().values()]
    torch.manual_seed(0)
    clip = OpenCLIPEncoder("ViT-B-32", pretrained=None, allow_random_weights=True)
    clip.load()
    fp16 = "fp16" if DEV == "cuda" else "fp32"

    def equivalence() -> None:
        # 1. ViT-B/32-shaped CLIP with random weights (same module on both devices).
        cpu = ImageEmbeddings(clip, device="cpu", batch_size=8).embed_images_array(photos)
        texts = ["a photo of a cat", "a rocket on a launch pad", "a cup of coffee"]
        cpu_text = np.array(ImageEmbeddings(clip, device="cpu").embed_documents(texts))
        for precision in ("fp32", "fp16", "bf16") if DEV == "cuda" else ("fp32",):
            clip_gpu = ImageEmbeddings(clip, device=DEV, batch_size=8, precision=precision)
            gpu = clip_gpu.embed_images_array(photos)
            gpu_text = np.array(clip_gpu.embed_documents(texts))
            results[f"clip_{precision}_vs_cpu_max_abs"] = float(np.abs(gpu - cpu).max())
            results[f"clip_{precision}_vs_cpu_min_cos"] = _cos_min(gpu, cpu)
            results[f"clip_text_{precision}_vs_cpu_min_cos"] = _cos_min(gpu_text, cpu_text)
            clip.to("cpu")

    def lite0() -> None:
        # 2. real weights: Lite0 on the GPU, classification and agreement with the CPU.
        lite_cpu = ImageEmbeddings("timm:efficientnet_lite0", device="cpu")
        lite_gpu = ImageEmbeddings("timm:efficientnet_lite0", device=DEV, precision="fp32")
        lite_gpu16 = ImageEmbeddings("timm:efficientnet_lite0", device=DEV, precision=fp16)
        a = lite_cpu.embed_images_array(photos)
        b = lite_gpu.embed_images_array(photos)
        c = lite_gpu16.embed_images_array(photos)
        results["lite0_fp32_vs_cpu_max_abs"] = float(np.abs(a - b).max())
        results["lite0_fp16_vs_cpu_min_cos"] = _cos_min(a, c)
        import timm

        from langchain_image_embeddings.encoders.timm import _lite0_from_package

        classifier = _lite0_from_package(timm).eval().to(DEV)
        pixels = lite_gpu.preprocess(photos[names.index("chelsea")]).unsqueeze(0).to(DEV)
        with torch.inference_mode():
            top = int(classifier(pixels).argmax())
        results["lite0_chelsea_class"] = top
        results["lite0_chelsea_is_cat"] = top in {281, 282, 283, 284, 285}

    def model_only() -> None:
        # 3. ViT-B/32 model-only throughput.
        clip.to(DEV)
        batch = 256 if DEV == "cuda" else 8
        for precision in ("fp32", "fp16"):
            dtype = resolve_precision(precision, DEV)
            pixels = torch.randn(batch, 3, 224, 224)
            if DEV == "cuda":
                pixels = pixels.pin_memory()
            with autocast_context(DEV, dtype):
                for _ in range(3):
                    clip.encode_images(pixels.to(DEV, non_blocking=True))
            reps = 10 if DEV == "cuda" else 1
            _sync()
            started = time.perf_counter()
            with autocast_context(DEV, dtype):
                for _ in range(reps):
                    clip.encode_images(pixels.to(DEV, non_blocking=True))
            _sync()
            results[f"vitb32_model_only_{precision}_img_s"] = round(
                batch * reps / (time.perf_counter() - started), 1
            )

    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    corpora: dict[str, list[str]] = {}

    def make_corpora() -> None:
        # 1080p: 512 distinct files, repeated to --images inputs (the page cache holds them,
        # as it would a hot dataset); 12 MP: --photos-12mp distinct files, q90 phone-like.
        hd = _jpeg_corpus(root / "hd", photos, (1920, 1080), min(512, args.images), 85)
        corpora["1080p"] = (hd * (args.images // len(hd) + 1))[: args.images]
        corpora["12mp"] = _jpeg_corpus(root / "12mp", photos, (4000, 3000), args.photos_12mp, 90)

    def gpu_decode_equivalence() -> None:
        # 4. GPU decoding matches the CPU path (cosine >= 0.998), per model, on real photos;
        #    and the fallbacks: PNG, CMYK JPEG (CPU path), progressive JPEG (device or CPU).
        paths = corpora["1080p"][: len(photos)]
        mixed = list(paths)
        png = root / "fallback.png"
        photos[0].save(png)
        cmyk = root / "cmyk.jpg"
        photos[1].convert("CMYK").save(cmyk, quality=90)
        progressive = root / "progressive.jpg"
        photos[2].save(progressive, quality=90, progressive=True)
        mixed += [str(png), str(cmyk), str(progressive)]
        for name, encoder in (("vitb32", clip), ("lite0", None)):
            model: Any = encoder if encoder is not None else "timm:efficientnet_lite0"
            on = ImageEmbeddings(model, device=DEV, batch_size=16, gpu_decode=True)
            off = ImageEmbeddings(on.encoder, device=DEV, batch_size=16, gpu_decode=False)
            pipeline_on = on.pipeline()
            got = np.concatenate([b.vectors for b in pipeline_on.run(mixed)])
            expected = off.embed_images_array(mixed)
            cos = _cos_sorted(got, expected)
            results[f"gpu_decode_{name}_vs_cpu_min_cos"] = cos[0]
            results[f"gpu_decode_{name}_vs_cpu_cos_lowest3"] = cos[:3]
            results[f"gpu_decode_{name}_meets_0.998"] = cos[0] >= 0.998
            stats = pipeline_on.stats
            results[f"gpu_decode_{name}_device_decoded"] = stats.device_decoded
            results[f"gpu_decode_{name}_cpu_fallbacks"] = stats.cpu_fallbacks
            results[f"gpu_decode_{name}_inputs"] = len(mixed)

    def end_to_end() -> None:
        # 5. ViT-B/32 fp16 end to end with GPU decoding on and off, default decode workers
        #    (sized by measurement); 1080p and 12 MP JPEGs. Target: >= 3,000 img/s on 1080p.
        clip.to(DEV)
        for corpus in ("1080p", "12mp"):
            paths = corpora[corpus]
            warmup = paths[: min(len(paths), 2 * args.batch_size)]
            for on in (True, False):
                emb = ImageEmbeddings(
                    clip, device=DEV, batch_size=args.batch_size, precision=fp16, gpu_decode=on
                )
                rate, stats, vectors = _rate(emb, paths, warmup)
                key = f"vitb32_{fp16}_{corpus}_gpu_decode_{'on' if on else 'off'}"
                results[f"{key}_img_s"] = round(rate, 1)
                results[f"{key}_workers"] = stats.workers
                results[f"{key}_decisions"] = [
                    f"{d.batch}:{d.workers}:{d.reason}" for d in stats.decisions
                ]
                results[f"{key}_device_decoded"] = stats.device_decoded
                results[f"{key}_decode_ms"] = round(stats.decode_ms, 3)
                results[f"{key}_model_ms"] = round(stats.model_ms, 3)
                results[f"{key}_vectors_finite"] = bool(np.isfinite(vectors).all())
                _write(results, args.out)
            on_rate = results[f"vitb32_{fp16}_{corpus}_gpu_decode_on_img_s"]
            off_rate = results[f"vitb32_{fp16}_{corpus}_gpu_decode_off_img_s"]
            results[f"vitb32_{corpus}_on_over_off"] = round(on_rate / off_rate, 2)  # type: ignore[operator]
        if DEV == "cuda":
            results["target_1080p_3000_img_s_met"] = (
                results[f"vitb32_{fp16}_1080p_gpu_decode_on_img_s"] >= 3000  # type: ignore[operator]
            )

    names = list(sample_photos().keys())
    for name, fn in (
        ("corpora", make_corpora),
        ("gpu_decode_equivalence", gpu_decode_equivalence),
        ("end_to_end", end_to_end),
        ("equivalence", equivalence),
        ("lite0", lite0),
        ("model_only", model_only),
    ):
        _section(results, args.out, name, fn)
    tmp.cleanup()
    print(json.dumps(results, indent=2))
    _write(results, args.out)
    failed = [key for key in results if key.endswith("_error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
