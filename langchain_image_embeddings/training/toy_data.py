"""Small labelled and captioned image sets built offline, for tests, demos and benchmarks.

* :func:`digit_images` — scikit-learn's ``load_digits`` (8x8 handwritten digits, 10 classes)
  upsampled to 64x64 RGB: a real, if tiny, metric-learning problem.
* :func:`captioned_shapes` — coloured shapes on the left or right with captions such as
  "a red circle on the left": a text-to-image problem whose answer is known.
"""

from __future__ import annotations

import random
from typing import Any

from PIL import Image, ImageDraw

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.training.data import CaptionedImages, LabeledImages

__all__ = ["COLORS", "SHAPES", "SIDES", "captioned_shapes", "digit_images", "draw_shape"]


COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 30),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIDES: tuple[str, ...] = ("left", "right")


def draw_shape(color: str, shape: str, side: str, rng: random.Random) -> Image.Image:
    """A 64x64 white image with one coloured shape, jittered, on the left or right half."""
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    r = rng.randint(9, 13)
    cx = (16 if side == "left" else 48) + rng.randint(-3, 3)
    cy = 32 + rng.randint(-10, 10)
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image


def captioned_shapes(per_combo: int, seed: int) -> CaptionedImages:
    """Every colour x shape x side combination ``per_combo`` times, with its caption.

    Example:
        >>> len(captioned_shapes(per_combo=1, seed=0).captions)
        24
    """
    rng = random.Random(seed)
    images: list[Any] = []
    captions: list[str] = []
    for _ in range(per_combo):
        for color in COLORS:
            for shape in SHAPES:
                for side in SIDES:
                    images.append(draw_shape(color, shape, side, rng))
                    captions.append(f"a {color} {shape} on the {side}")
    return CaptionedImages(images, captions)


def digit_images(per_class: int) -> LabeledImages:
    """The first ``per_class`` digits of each class from ``load_digits``, as 64x64 RGB images."""
    import numpy as np

    datasets = require("sklearn.datasets", "scikit-learn")
    digits = datasets.load_digits()
    images: list[Any] = []
    labels: list[str] = []
    for label in range(10):
        for i in np.flatnonzero(digits.target == label)[:per_class]:
            pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)
            image = Image.fromarray(pixels).resize((64, 64), Image.Resampling.BILINEAR)
            images.append(image.convert("RGB"))
            labels.append(str(label))
    return LabeledImages(images, labels)
