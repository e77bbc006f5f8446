"""Helpers shared by the image-store tests (synthetic images, encoder call counting)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from langchain_image_embeddings.vectorstores.base import ImageVectorStore

#: Makes a store of the parametrised kind (``make_store`` fixture) over the given model.
StoreFactory = Callable[[Any], ImageVectorStore]


def write_image(path: Path, seed: int, size: int = 40, fmt: str = "PNG") -> Path:
    """Write a small, distinct image (seeded noise over a colour ramp)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    base = np.stack(
        [
            np.add.outer(ramp * (seed % 3) / 2, ramp * 0),
            np.add.outer(ramp * 0, ramp),
            np.full((size, size), (seed * 37) % 256),
        ],
        axis=-1,
    )
    noise = rng.integers(0, 80, size=(size, size, 3))
    array = np.clip(base * 0.7 + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def write_folder(root: Path, n: int, start: int = 0) -> list[Path]:
    """``n`` distinct PNGs ``img00.png`` ... under ``root``."""
    return [write_image(root / f"img{i:02d}.png", seed=i) for i in range(start, start + n)]


class EncoderSpy:
    """Counts images passed through ``encoder.encode_images`` (install with monkeypatch)."""

    def __init__(self, encoder: Any, monkeypatch: Any) -> None:
        self.images = 0
        original = encoder.encode_images

        def counting(pixels: Any) -> Any:
            self.images += int(pixels.shape[0])
            return original(pixels)

        monkeypatch.setattr(encoder, "encode_images", counting)

    def take(self) -> int:
        """Images counted since the last call."""
        count, self.images = self.images, 0
        return count
