"""Label-free queries: augmented copies of a sample of the corpus, answered by their original.

Each copy is cropped, maybe mirrored, rescaled, colour-shifted and re-encoded as JPEG, with
parameters drawn from a random generator seeded by ``(seed, image, copy number)``: the same
seed gives the same queries, byte for byte, on any machine and whatever else is sampled.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageOps

from langchain_image_embeddings.evaluation._queries import Corpus, Query
from langchain_image_embeddings.images import ImageLoadOptions, load_image

__all__ = ["Augmentation", "augment", "label_free_queries"]

#: Longest side of the copy an augmentation starts from (keeps 12 MP photos cheap in memory).
_WORKING_SIDE = 1024


@dataclass(frozen=True)
class Augmentation:
    """The parameters of one augmented copy (drawn by :meth:`draw`).

    Attributes:
        crop: ``(left, top, right, bottom)`` as fractions of the width and height.
        flip: Mirror left-right.
        scale: Resize factor after the crop.
        brightness, contrast, saturation: ``ImageEnhance`` factors (1 = unchanged).
        quality: JPEG quality of the re-encode.
    """

    crop: tuple[float, float, float, float]
    flip: bool
    scale: float
    brightness: float
    contrast: float
    saturation: float
    quality: int

    @classmethod
    def draw(cls, rng: random.Random) -> Augmentation:
        """Random parameters: keep 60-90% of each side, flip half the time, rescale to
        40-80%, shift each colour factor by up to 30%, JPEG quality 30-70."""
        keep_w, keep_h = rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.9)
        left, top = rng.uniform(0, 1 - keep_w), rng.uniform(0, 1 - keep_h)
        return cls(
            crop=(left, top, left + keep_w, top + keep_h),
            flip=rng.random() < 0.5,
            scale=rng.uniform(0.4, 0.8),
            brightness=rng.uniform(0.7, 1.3),
            contrast=rng.uniform(0.7, 1.3),
            saturation=rng.uniform(0.7, 1.3),
            quality=rng.randint(30, 70),
        )

    def describe(self) -> str:
        """A short recipe, e.g. ``crop 72x65% flip scale 0.55 colour 1.1/0.9/1.2 jpeg q41``."""
        left, top, right, bottom = self.crop
        return (
            f"crop {100 * (right - left):.0f}x{100 * (bottom - top):.0f}%"
            + (" flip" if self.flip else "")
            + f" scale {self.scale:.2f} colour {self.brightness:.2f}/{self.contrast:.2f}/"
            f"{self.saturation:.2f} jpeg q{self.quality}"
        )


def augment(image: Image.Image, recipe: Augmentation) -> bytes:
    """Apply ``recipe`` to an RGB image; the JPEG bytes of the copy."""
    image = image.convert("RGB")
    left, top, right, bottom = recipe.crop
    w, h = image.size
    image = image.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
    if recipe.flip:
        image = ImageOps.mirror(image)
    size = (max(1, round(image.width * recipe.scale)), max(1, round(image.height * recipe.scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    image = ImageEnhance.Brightness(image).enhance(recipe.brightness)
    image = ImageEnhance.Contrast(image).enhance(recipe.contrast)
    image = ImageEnhance.Color(image).enhance(recipe.saturation)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=recipe.quality)
    return buffer.getvalue()


def label_free_queries(
    corpus: Corpus,
    *,
    sample: int | None = None,
    copies: int = 2,
    seed: int = 0,
    load_options: ImageLoadOptions | None = None,
) -> list[Query]:
    """``copies`` augmented copies of ``sample`` corpus images (all when ``None``), each a
    query whose one relevant item is its original.

    Deterministic: the sample is drawn with ``seed``, and each copy's parameters with
    ``(seed, path under the corpus root, copy number)``.

    Raises:
        ValueError: ``copies`` or ``sample`` below 1.
        ImageLoadError: An original cannot be read.
    """
    if copies < 1 or (sample is not None and sample < 1):
        raise ValueError("copies and sample must be at least 1")
    keys = corpus.keys
    if sample is not None and sample < len(keys):
        keys = sorted(random.Random(seed).sample(keys, sample))
    queries = []
    for key in keys:
        # Seeded by the path under the corpus root: the same folder gives the same queries
        # wherever it lies.
        name = key if corpus.root is None else os.path.relpath(key, corpus.root)
        original = load_image(key, load_options)
        original.thumbnail((_WORKING_SIDE, _WORKING_SIDE), Image.Resampling.BILINEAR)
        for number in range(copies):
            recipe = Augmentation.draw(random.Random(f"{seed}/{name}/{number}"))
            queries.append(
                Query(frozenset({key}), image=augment(original, recipe), origin=recipe.describe())
            )
    return queries
