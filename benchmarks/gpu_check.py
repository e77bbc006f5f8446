"""GPU check: the CUDA code path (device placement, autocast, pinned memory) is right and fast.

Run on a machine with a CUDA GPU (no network needed; weights are random or shipped on PyPI):

    python benchmarks/gpu_check.py [--out results.json]

It prints, and writes as JSON:
1. equivalence: CPU fp32 vs CUDA fp32 vectors (max abs diff), and CUDA fp16 / bf16 autocast
   vs CUDA fp32 (minimum cosine), for a ViT-B/32-shaped CLIP (random weights) and the real
   EfficientNet-Lite0 weights;
2. the real Lite0 weights classify skimage's ``chelsea`` as a cat on the GPU;
3. throughput of ViT-B/32 (random weights): model-only images/s at fp32 and fp16, and
   end-to-end ``embed_images`` on generated 1920x1080 JPEGs with the decode pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder
from langchain_image_embeddings.pipeline import (
    autocast_context,
    default_num_workers,
    resolve_precision,
    use_pinned_memory,
)
from langchain_image_embeddings.samples import sample_photos


def _cos_min(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


DEV = "cuda"


def _sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def _web_corpus(directory: Path, photos: list[Image.Image], count: int) -> list[str]:
    paths = []
    for i in range(count):
        image = photos[i % len(photos)].resize((1920, 1080), Image.Resampling.BICUBIC)
        if i % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = directory / f"web_{i:04d}.jpg"
        image.save(path, quality=85)
        paths.append(str(path))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--cpu-dry-run", action="store_true", help="check the script on a CPU")
    args = parser.parse_args()
    global DEV
    if args.cpu_dry_run:
        DEV, args.images = "cpu", 16
    elif not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    results: dict[str, object] = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if DEV == "cuda" else "none (dry run)",
        "cpus": os.cpu_count(),
        "pinned_memory": use_pinned_memory(DEV),
    }
    photos = list(sample_photos().values())

    # 1. equivalence, ViT-B/32-shaped CLIP with random weights (same module on both devices).
    torch.manual_seed(0)
    clip = OpenCLIPEncoder("ViT-B-32", pretrained=None, allow_random_weights=True)
    clip.load()
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

    # 2. real weights: Lite0 on the GPU, classification and agreement with the CPU.
    lite_cpu = ImageEmbeddings("timm:efficientnet_lite0", device="cpu")
    lite_gpu = ImageEmbeddings("timm:efficientnet_lite0", device=DEV, precision="fp32")
    lite_gpu16 = ImageEmbeddings(
        "timm:efficientnet_lite0", device=DEV, precision="fp16" if DEV == "cuda" else "fp32"
    )
    a = lite_cpu.embed_images_array(photos)
    b = lite_gpu.embed_images_array(photos)
    c = lite_gpu16.embed_images_array(photos)
    results["lite0_fp32_vs_cpu_max_abs"] = float(np.abs(a - b).max())
    results["lite0_fp16_vs_cpu_min_cos"] = _cos_min(a, c)
    import timm

    from langchain_image_embeddings.encoders.timm import _lite0_from_package

    classifier = _lite0_from_package(timm).eval().to(DEV)
    pixels = lite_gpu.preprocess(sample_photos(("chelsea",))["chelsea"]).unsqueeze(0).to(DEV)
    with torch.inference_mode():
        top = int(classifier(pixels).argmax())
    results["lite0_chelsea_class"] = top
    results["lite0_chelsea_is_cat"] = top in {281, 282, 283, 284, 285}

    # 3. throughput, ViT-B/32.
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
        reps = 10
        _sync()
        started = time.perf_counter()
        with autocast_context(DEV, dtype):
            for _ in range(reps):
                clip.encode_images(pixels.to(DEV, non_blocking=True))
        _sync()
        results[f"vitb32_model_only_{precision}_img_s"] = round(
            batch * reps / (time.perf_counter() - started), 1
        )

    with tempfile.TemporaryDirectory() as tmp:
        paths = _web_corpus(Path(tmp), photos, args.images)
        for precision in ("fp16",) if DEV == "cuda" else ("fp32",):
            emb = ImageEmbeddings(clip, device=DEV, batch_size=128, precision=precision)
            emb.embed_images_array(paths[:128])  # warm-up
            started = time.perf_counter()
            vectors = emb.embed_images_array(paths)
            elapsed = time.perf_counter() - started
            results[f"vitb32_end_to_end_web1080p_{precision}_img_s"] = round(
                len(paths) / elapsed, 1
            )
            results["end_to_end_vectors_finite"] = bool(np.isfinite(vectors).all())
            results["end_to_end_workers"] = emb.num_workers or default_num_workers(DEV)

    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
