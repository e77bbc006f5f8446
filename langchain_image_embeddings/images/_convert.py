"""Pixels to RGB: every PIL mode (:func:`to_rgb`: EXIF orientation, transparency composited,
16-bit and float rescaled) and numpy arrays of any dtype and channel count
(:func:`from_array`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from PIL import Image, ImageOps

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._options import (
    DEFAULT_OPTIONS,
    ImageLoadOptions,
    check_geometry,
)


def from_array(array: Any, opts: ImageLoadOptions) -> Image.Image:
    """A numpy array (``HxW``, ``HxWx1/3/4``; bool, integer or float in [0, 1]) as RGB."""
    import numpy as np

    arr = np.asarray(array)
    desc = f"<array shape={arr.shape} dtype={arr.dtype}>"

    def bad(reason: str) -> ImageLoadError:
        return ImageLoadError(desc, reason, "invalid_array")

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise bad("expected shape HxW, HxWx1, HxWx3 or HxWx4")
    if arr.size == 0:
        raise bad("the array is empty")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint8:
        pass
    elif arr.dtype.kind == "u" and arr.dtype.itemsize == 2:  # either byte order
        arr = np.round(arr.astype(np.float32) / 257.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise bad("the array contains NaN or infinite values")
        low, high = float(arr.min()), float(arr.max())
        if low < -1e-6 or high > 1.0 + 1e-6:
            raise bad(f"float arrays must hold values in [0, 1]; found [{low:g}, {high:g}]")
        arr = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high > 255:
            raise bad(
                f"integer arrays other than uint16 must hold values in [0, 255]; found [{low}, {high}]"
            )
        arr = arr.astype(np.uint8)
    else:
        raise bad("unsupported dtype")
    image = Image.fromarray(
        np.ascontiguousarray(arr)
    )  # uint8 HxW / HxWx3 / HxWx4 -> L / RGB / RGBA
    check_geometry(image.size, desc, opts)
    return to_rgb(image, opts, exif=False)


def to_rgb(
    image: Image.Image, opts: ImageLoadOptions | None = None, *, exif: bool = True
) -> Image.Image:
    """Convert a decoded image of any mode to RGB.

    EXIF orientation is applied (defensively: a broken EXIF block leaves the image as is),
    16-bit and float images are rescaled rather than clipped, and transparency (alpha
    channels, palette transparency) is composited on ``opts.background``.
    """
    opts = opts or DEFAULT_OPTIONS
    if exif and opts.apply_exif_orientation:
        with contextlib.suppress(Exception):
            image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_to_rgb(image)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "La":  # premultiplied; Pillow converts only RGBa -> RGBA
        luma, alpha = image.split()
        image = Image.merge("RGBa", (luma, luma, luma, alpha))
    elif mode in ("L", "1") and "transparency" in image.info:
        image = image.convert("LA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*opts.background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    import numpy as np

    arr = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        finite = arr[np.isfinite(arr)]
        high = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if high <= 1.0 else (255.0 / 65535.0 if high > 255.0 else 1.0)
    else:
        high = float(arr.max()) if arr.size else 0.0
        # 16-bit data (also stored in 32-bit "I" mode) is scaled, 8-bit data in "I" kept as is.
        scale = 255.0 / 65535.0 if image.mode.startswith("I;16") or high > 255.0 else 1.0
    out = np.clip(np.nan_to_num(arr * scale), 0.0, 255.0).round().astype(np.uint8)
    return Image.fromarray(out).convert("RGB")
