"""``add_images`` end to end: a folder of photos into a FAISS store, images per second.

Measures what a store adds on top of ``embed_images``: reading each file for its SHA-256,
planning by content id, embedding, writing. Run it against two checkouts to compare them
(``PYTHONPATH`` picks the package)::

    PYTHONPATH=. python benchmarks/ingest.py --count 64
    PYTHONPATH=/path/to/other/checkout python benchmarks/ingest.py --count 64

It writes ``--count`` JPEGs (1920x1080, made from the sample photos; cached in ``--cache``),
then times one ``add_images`` of the folder into a fresh FAISS store with the real
EfficientNet-Lite0 weights, and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def corpus(folder: Path, count: int) -> list[Path]:
    from langchain_image_embeddings.samples import sample_photos

    folder.mkdir(parents=True, exist_ok=True)
    photos = list(sample_photos().values())
    paths = []
    for i in range(count):
        path = folder / f"web-{i:05d}.jpg"
        if not path.exists():
            image = photos[i % len(photos)].resize((1920, 1080)).rotate(i * 0.5)  # unique bytes
            image.save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "imgemb-ingest-v2"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from langchain_image_embeddings import FAISSImageStore, ImageEmbeddings

    torch.set_num_threads(args.threads)
    paths = corpus(Path(args.cache), args.count)
    embeddings = ImageEmbeddings("timm:efficientnet_lite0", device="cpu", batch_size=32)
    embeddings.encoder.load()
    embeddings.embed_images([str(paths[0])])  # warm-up: the model, not the ingest
    with tempfile.TemporaryDirectory() as folder:
        store = FAISSImageStore(embeddings, Path(folder) / "store")
        start = time.perf_counter()
        result = store.add_images([str(p) for p in paths])
        seconds = time.perf_counter() - start
    assert len(result.added) == len(paths), result.failures
    print(
        json.dumps({"images": len(paths), "seconds": seconds, "per_second": len(paths) / seconds})
    )


if __name__ == "__main__":
    main()
