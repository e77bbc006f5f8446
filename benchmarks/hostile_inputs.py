"""Bounded time and memory for every hostile input (issue: < 2 s and < 500 MB each).

Generates a corpus of hostile files (no downloads), then embeds each one alone, in its own
subprocess, through ``ImageEmbeddings.try_embed_images`` with the real EfficientNet-Lite0
weights, and prints the outcome (ok or the error code), the wall time of the call and the
growth of peak RSS over the process's RSS just before the call (the model is loaded first).

    python benchmarks/hostile_inputs.py [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _png(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def make_corpus(root: Path) -> dict[str, Path]:
    """Write the hostile files and return name -> path."""
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {}
    files["strip_10000x1.png"] = _png(Image.new("L", (10000, 1)))
    files["strip_10000x100.png"] = _png(Image.new("L", (10000, 100)))
    files["tiny_1x1.png"] = _png(Image.new("RGB", (1, 1)))
    files["bomb_30000x30000_1bit.png"] = _png(Image.new("1", (30000, 30000)))
    files["warnband_10000x9500_1bit.png"] = _png(Image.new("1", (10000, 9500)))
    files["over_limit_9000x9000_rgba.png"] = _png(Image.new("RGBA", (9000, 9000), (10, 20, 30, 0)))
    files["at_limit_8000x8000_grey.png"] = _png(Image.new("L", (8000, 8000), 128), optimize=True)
    files["at_limit_8000x8000_rgba.png"] = _png(Image.new("RGBA", (8000, 8000), (10, 20, 30, 0)))
    noisy = Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, format="JPEG", quality=90)
    jpeg = buffer.getvalue()
    files["phone_4000x3000.jpg"] = jpeg
    files["truncated_4000x3000.jpg"] = jpeg[: len(jpeg) // 3]
    files["sixteen_bit_4000x3000.png"] = _png(
        Image.fromarray(rng.integers(0, 65535, (3000, 4000), np.uint16))
    )
    files["eps_named.jpg"] = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    files["zero_bytes.jpg"] = b""
    frames = [Image.new("P", (2000, 2000), i) for i in range(50)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    files["animated_50x2000x2000.gif"] = buffer.getvalue()
    paths = {}
    for name, data in files.items():
        path = root / name
        path.write_bytes(data)
        paths[name] = path
    fifo = root / "fifo.jpg"
    os.mkfifo(fifo)
    paths["fifo.jpg"] = fifo
    return paths


def _child(path: str) -> None:
    from langchain_image_embeddings import ImageEmbeddings

    embeddings = ImageEmbeddings("timm:efficientnet_lite0", device="cpu", batch_size=1)
    embeddings.encoder.load()
    embeddings.embed_images_array([np.zeros((32, 32, 3), np.uint8)])  # warm up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/status") as fh:
        rss_now = next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS"))
    started = time.perf_counter()
    result = embeddings.try_embed_images([path])
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outcome = "ok" if result.ok else result.errors[0].code
    growth = max(0.0, peak - max(before, rss_now))
    print(
        json.dumps(
            {"outcome": outcome, "seconds": round(elapsed, 3), "peak_growth_mb": round(growth, 1)}
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(Path(tmp))
        print(f"{'file':32} {'size':>10} {'outcome':>20} {'seconds':>8} {'+peak MB':>9}")
        for name, path in corpus.items():
            size = path.stat().st_size if path.is_file() else 0
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            row = {"file": name, "bytes": size, **json.loads(out.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(
                f"{name:32} {size:>10} {row['outcome']:>20} {row['seconds']:>8.3f} "
                f"{row['peak_growth_mb']:>9.1f}"
            )
    worst_time = max(r["seconds"] for r in rows)
    worst_mem = max(r["peak_growth_mb"] for r in rows)
    print(f"worst: {worst_time:.3f} s, +{worst_mem:.1f} MB (targets: < 2 s, < 500 MB)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if worst_time < 2 and worst_mem < 500 else 1


if __name__ == "__main__":
    sys.exit(main())
