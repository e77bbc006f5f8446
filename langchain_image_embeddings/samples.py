"""Real sample photos for demos and tests, from packages (no downloads).

``skimage.data`` ships a handful of real photographs (astronaut, chelsea the cat, coffee,
rocket, ...). :func:`write_sample_photos` writes them as JPEG files, optionally with
transformed copies (crop, flip, resize, JPEG re-encode) that an image-to-image search
should match back to their original.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from langchain_image_embeddings._optional import require

__all__ = ["PHOTO_NAMES", "TRANSFORMS", "sample_photos", "write_sample_photos"]

#: skimage.data photos used by the demo and the tests (all real photographs, RGB).
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "camera",
    "coins",
)


#: Transform name -> function producing a derived image a retrieval system should match.
def _crop(im: Image.Image) -> Image.Image:
    dx, dy = im.width // 10, im.height // 10
    return im.crop((dx, dy, im.width - dx, im.height - dy))


def _flip(im: Image.Image) -> Image.Image:
    return ImageOps.mirror(im)


def _small(im: Image.Image) -> Image.Image:
    return im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR)


def _jpeg(im: Image.Image) -> Image.Image:
    return Image.open(_reencode(im, 35)).convert("RGB")


TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop": _crop,
    "flip": _flip,
    "small": _small,
    "jpeg": _jpeg,
}


def _reencode(image: Image.Image, quality: int) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return buffer


def sample_photos(names: tuple[str, ...] = PHOTO_NAMES) -> dict[str, Image.Image]:
    """Load the named ``skimage.data`` photos as RGB images (needs ``scikit-image``)."""
    data = require("skimage.data", "scikit-image")
    # camera and coins are greyscale photos: converted to RGB like any other input.
    return {name: Image.fromarray(getattr(data, name)()).convert("RGB") for name in names}


def write_sample_photos(
    directory: str | Path, *, copies: bool = True, names: tuple[str, ...] = PHOTO_NAMES
) -> list[Path]:
    """Write the sample photos (and their transformed copies) as JPEGs into ``directory``.

    Originals are ``<name>.jpg``; copies are ``copies/<name>-<transform>.jpg``.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.samples import write_sample_photos

            paths = write_sample_photos("photos")
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, image in sample_photos(names).items():
        path = root / f"{name}.jpg"
        image.save(path, quality=92)
        written.append(path)
        if copies:
            (root / "copies").mkdir(exist_ok=True)
            for transform, fn in TRANSFORMS.items():
                copy_path = root / "copies" / f"{name}-{transform}.jpg"
                fn(image).save(copy_path, quality=92)
                written.append(copy_path)
    return written
