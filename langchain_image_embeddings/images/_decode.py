"""Decoding encoded images safely: the header checks (:func:`open_image_header`), the full
decode with its fast path (JPEG DCT scaling, early box reduction), truncated data on
request, and PIL images handed in.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import IO

from PIL import Image, UnidentifiedImageError

from langchain_image_embeddings.images._convert import to_rgb
from langchain_image_embeddings.images._options import (
    DEFAULT_OPTIONS,
    ImageLoadOptions,
    check_geometry,
    fail,
)


def open_image_header(
    fp: IO[bytes], source: object, options: ImageLoadOptions | None = None
) -> Image.Image:
    """Parse only the header of an encoded image and apply every header check.

    The one set of checks both :func:`load_image` and the document loaders use: the format
    must be one of ``options.formats``, the header must parse, and the size must pass the
    pixel limit and the aspect-ratio limit. No pixel is decoded (Pillow opens lazily).

    Args:
        fp: The encoded image, a binary file object positioned at its start.
        source: The input to name in errors.
        options: Limits and policies; :data:`DEFAULT_OPTIONS` when omitted.

    Returns:
        The lazily opened ``PIL.Image`` (``size`` and ``format`` are known).

    Raises:
        ImageLoadError: ``unsupported_format``, ``corrupt``, ``decompression_bomb`` or
            ``bad_geometry``.

    Example:
        .. code-block:: python

            import io

            from PIL import Image

            from langchain_image_embeddings.images import open_image_header

            buffer = io.BytesIO()
            Image.new("RGB", (64, 48)).save(buffer, format="PNG")
            buffer.seek(0)
            open_image_header(buffer, "in-memory.png").size  # (64, 48)
    """
    opts = options or DEFAULT_OPTIONS
    with warnings.catch_warnings():
        # We enforce our own pixel limit from the header; Pillow's warning band is noise here.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(fp, formats=list(opts.formats))
        except Image.DecompressionBombError as exc:
            raise fail(source, f"decompression bomb refused: {exc}", "decompression_bomb") from exc
        except UnidentifiedImageError as exc:
            allowed = ", ".join(opts.formats)
            raise fail(
                source,
                f"not an image, or not one of the allowed formats ({allowed})",
                "unsupported_format",
            ) from exc
        except Exception as exc:  # header parsers raise many types on hostile data
            raise fail(source, f"cannot parse the image header: {exc}", "corrupt") from exc
    check_geometry(image.size, source, opts)
    return image


def decode(
    fp: IO[bytes],
    source: object,
    opts: ImageLoadOptions,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Header checks, full decode (at a reduced scale with ``draft_size``), RGB conversion."""
    image = open_image_header(fp, source, opts)
    with warnings.catch_warnings():
        # We enforce our own pixel limit from the header; Pillow's warning band is noise here.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if draft_size is not None and image.format == "JPEG":
            _apply_draft(image, draft_size, opts)
        try:
            image.load()
        except OSError as exc:
            code = "truncated" if "truncated" in str(exc) else "corrupt"
            if code == "truncated" and opts.allow_truncated:
                image = _decode_truncated(fp, image, source, opts, draft_size)
            else:
                reason = (
                    "the image data is truncated"
                    if code == "truncated"
                    else f"cannot decode: {exc}"
                )
                raise fail(source, reason, code) from exc
        except Exception as exc:  # decoders raise many types on hostile data
            raise fail(source, f"cannot decode: {type(exc).__name__}: {exc}", "corrupt") from exc
        decoded: Image.Image = image
        if draft_size is not None:
            decoded = _reduce_early(image, draft_size, opts)
        try:
            return to_rgb(decoded, opts)
        except Exception as exc:  # e.g. a mode conversion Pillow cannot do on this data
            raise fail(
                source, f"cannot convert to RGB: {type(exc).__name__}: {exc}", "corrupt"
            ) from exc


#: EXIF orientations that swap width and height (transpose, 90°, transverse, 270°).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def _stored_size(
    image: Image.Image, size: tuple[int, int], opts: ImageLoadOptions
) -> tuple[int, int]:
    """``size`` (w, h, display orientation) in the stored pixels' orientation.

    Decoders and ``reduce`` work before EXIF orientation is applied, so a 90°/270°
    orientation swaps the sides.
    """
    width, height = max(1, int(size[0])), max(1, int(size[1]))
    if opts.apply_exif_orientation:
        with contextlib.suppress(Exception):
            if image.getexif().get(0x0112) in _SWAPPING_ORIENTATIONS:
                return height, width
    return width, height


def _apply_draft(image: Image.Image, size: tuple[int, int], opts: ImageLoadOptions) -> None:
    """Ask the JPEG decoder for the smallest DCT scale still covering ``size`` (w, h).

    ``size`` is in display orientation; the decoder works on the stored (unrotated) pixels,
    so a 90°/270° EXIF orientation swaps it. Any problem leaves the full decode in place.
    """
    width, height = _stored_size(image, size, opts)
    with contextlib.suppress(Exception):
        image.draft(image.mode if image.mode in ("L", "CMYK") else "RGB", (width, height))


# Modes Image.reduce() box-averages correctly (palette and 1-bit images are not averaged).
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"})


def _decode_truncated(
    fp: IO[bytes],
    image: Image.Image,
    source: object,
    opts: ImageLoadOptions,
    draft_size: tuple[int, int] | None,
) -> Image.Image:
    """Decode what a truncated file holds, for this load only.

    Pillow's ``LOAD_TRUNCATED_IMAGES`` is process-wide: flipping it would let truncated files
    through in every other thread too. Instead we do what it does, locally: a JPEG gets an
    end-of-image marker where its data stops (libjpeg then finishes the picture, progressive
    scans included); other decoders have already written the rows they could decode into
    ``image`` before the data ran out, and those are kept (the rest stays black).
    """
    if image.format == "JPEG":
        fp.seek(0)
        ended = open_image_header(io.BytesIO(fp.read(opts.max_bytes) + b"\xff\xd9"), source, opts)
        if draft_size is not None:
            _apply_draft(ended, draft_size, opts)
        try:
            ended.load()
        except Exception as exc:
            raise fail(source, f"cannot decode the truncated data: {exc}", "truncated") from exc
        return ended
    from PIL import ImageFile

    if not isinstance(image, ImageFile.ImageFile) or getattr(image, "_im", None) is None:
        # the decoder never started: no pixel to keep
        raise fail(source, "the image data is truncated and nothing could be decoded", "truncated")
    image.tile = []  # nothing more to read: later loads and conversions use the rows decoded
    return image


def _reduce_early(image: Image.Image, size: tuple[int, int], opts: ImageLoadOptions) -> Image.Image:
    """Box-reduce a decoded image that is far larger than ``size`` *before* mode conversion.

    Converting a 9000x9000 RGBA PNG to RGB (alpha compositing) costs more than a gigabyte
    and seconds; reducing it first by the integer factor that keeps ``size`` costs neither.
    Only on the fast path (``draft_size`` given); ``size`` already includes the caller's
    safety margin.
    """
    if image.mode not in _REDUCIBLE_MODES:
        return image
    width, height = _stored_size(image, size, opts)
    factor = min(image.width // width, image.height // height)
    if factor < 2:
        return image
    info = dict(image.info)
    reduced = image.reduce(factor)
    reduced.info.update(info)  # keep EXIF for the orientation step
    return reduced


def from_pil(image: Image.Image, opts: ImageLoadOptions) -> Image.Image:
    """A PIL image handed in: loaded (a closed one is refused), checked, converted."""
    try:
        image.load()
    except (ValueError, AttributeError) as exc:
        raise fail(image, f"the PIL image cannot be read ({exc})", "invalid_input") from exc
    except OSError as exc:
        raise fail(image, f"cannot decode: {exc}", "corrupt") from exc
    check_geometry(image.size, image, opts)
    return to_rgb(image, opts)
