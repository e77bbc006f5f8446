"""``imgemb serve`` under concurrent image uploads: the server process's peak memory growth.

Starts the app in this process (uvicorn on 127.0.0.1, a FAISS store of a few images embedded
with a tiny random CLIP, no download), sends ``--count`` uploads of one large PNG at once and
prints, per case, one JSON line with the growth of the peak RSS (``VmHWM``, reset through
``/proc/self/clear_refs`` after the warm-up) over the RSS before the uploads. Each case runs
in a fresh process. Run it against two checkouts to compare them (``PYTHONPATH`` picks the
package)::

    PYTHONPATH=. python benchmarks/serve_uploads.py
    PYTHONPATH=/path/to/other/checkout python benchmarks/serve_uploads.py

The PNGs (8000x5000 = 40 M pixels of zeros, RGB and RGBA: 115-155 KB each, each decoding to
160 MB: Pillow keeps RGB in 4 bytes a pixel) are written to ``--cache`` once. Linux only
(``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SIZE = (8000, 5000)
TINY_CLIP = "lie-tiny-clip"
TINY_CLIP_CONFIG = Path(__file__).resolve().parent.parent / "tests" / "tiny_clip.json"


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def write_pngs(folder: Path) -> dict[str, Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for mode in ("RGB", "RGBA"):
        path = folder / f"zeros-{SIZE[0]}x{SIZE[1]}-{mode}.png"
        if not path.exists():
            Image.new(mode, SIZE).save(path, format="PNG")
        paths[mode.lower()] = path
    return paths


def _store(folder: Path):  # type: ignore[no-untyped-def]
    import open_clip
    import torch
    from PIL import Image

    from langchain_image_embeddings import FAISSImageStore, ImageEmbeddings
    from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder

    configs = folder / "configs"
    configs.mkdir()
    (configs / f"{TINY_CLIP}.json").write_text(TINY_CLIP_CONFIG.read_text())
    open_clip.add_model_config(configs)
    torch.manual_seed(0)
    encoder = OpenCLIPEncoder(TINY_CLIP, pretrained=None, allow_random_weights=True)
    embeddings = ImageEmbeddings(encoder, device="cpu", batch_size=8)
    images = folder / "images"
    images.mkdir()
    for i in range(8):
        Image.new("RGB", (64, 48), (i * 30, 255 - i * 30, 90)).save(images / f"{i}.png")
    store = FAISSImageStore(embeddings, folder / "index")
    store.add_images(sorted(str(p) for p in images.iterdir()))
    return store


def measure(png: Path, count: int) -> dict[str, object]:
    """One case, in this process: the server, a warm-up upload, then ``count`` at once."""
    import httpx

    from langchain_image_embeddings.serve import create_app

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.serve_helpers import live_server

    data = png.read_bytes()
    with tempfile.TemporaryDirectory() as tmp, live_server(create_app(_store(Path(tmp)))) as url:

        def upload(body: bytes) -> int:
            files = {"file": ("query.png", body, "image/png")}
            response = httpx.post(url + "api/search/image?k=3", files=files, timeout=600)
            return response.status_code

        small = Path(tmp) / "images" / "0.png"
        assert upload(small.read_bytes()) == 200  # warm-up: the model, not the uploads
        rss = _kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        start = time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            statuses = list(pool.map(upload, [data] * count))
        seconds = time.perf_counter() - start
        peak = _kib("VmHWM")
    return {
        "png": png.name,
        "bytes": len(data),
        "uploads": count,
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "seconds": round(seconds, 2),
        "rss_before_mb": round(rss / 1024),
        "peak_growth_mb": round((peak - rss) / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "imgemb-uploads"))
    parser.add_argument("--count", type=int, nargs="*", default=[20, 1])
    parser.add_argument("--modes", nargs="*", default=["rgb", "rgba"])
    parser.add_argument("--case", nargs=2, metavar=("PNG", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.case:
        import torch

        torch.set_num_threads(2)
        print(json.dumps(measure(Path(args.case[0]), int(args.case[1]))), flush=True)
        return
    pngs = write_pngs(Path(args.cache))
    for mode in args.modes:
        for count in args.count:
            # a fresh process per case: VmHWM and malloc's arenas start from the same point
            subprocess.run(
                [sys.executable, __file__, "--case", str(pngs[mode]), str(count)], check=True
            )


if __name__ == "__main__":
    main()
