"""Limits and policies for reading images (:class:`ImageLoadOptions`), the image suffixes
and formats, and how an input is named and refused (:func:`describe`, :func:`fail`,
:func:`check_geometry`): the bottom layer every image reader shares.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from PIL import Image

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._source import ImageSource

#: Formats whose decoders we let run. EPS, PSD, FITS and friends never reach their decoders.
DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")

#: File suffixes of :data:`DEFAULT_FORMATS`: what folder listings (the directory loader, the
#: CLI, training data) pick up, and what makes a string look like an image path.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".avif",
)


@dataclass(frozen=True)
class ImageLoadOptions:
    """Limits and policies for :func:`load_image`.

    Attributes:
        max_pixels: Refuse images with more pixels than this, read from the header before
            any pixel is decoded (Pillow's own default only warns below 179 M pixels).
        max_bytes: Refuse files, downloads and decoded ``data:`` payloads larger than this.
        max_aspect_ratio: Refuse images whose long side exceeds the short side by more than
            this factor (a 10000x1 strip costs gigabytes in a shortest-edge resize).
        allow_remote: Fetch ``http(s)://`` URLs. Off by default: a service that embeds
            user-supplied URLs must opt in knowingly.
        timeout: Seconds to wait for a connection or for each read of a download.
        total_timeout: Seconds a whole download may take (a slow drip cannot hang us).
        max_redirects: Redirects followed, each target checked again.
        allowed_hosts: Host names or IPs fetched even though they resolve to a loopback,
            private or link-local address (by default such URLs are refused: SSRF). See
            :mod:`langchain_image_embeddings.images._fetch`.
        background: RGB colour that transparent pixels are composited on.
        formats: Pillow format names whose decoders may run.
        apply_exif_orientation: Rotate/flip according to the EXIF orientation tag.
        allow_truncated: Decode what a truncated file holds instead of refusing it (missing
            rows are filled by the decoder). Scoped to each load, never process-wide.
        root: When set, local paths must resolve (symlinks and ``..`` included) to a file
            under this directory; anything else is refused with code ``outside_root``.
        allow_object_storage: Read object-storage URIs (``s3://``, ``gs://``, ``hdfs://``,
            ``abfs://`` ...) through pyarrow. Off by default, like ``allow_remote``: a list of
            inputs must not reach a bucket unless the caller opts in. Endpoints come from the
            environment's configuration only, and a configured endpoint on a loopback or
            private address is refused unless its host is in ``allowed_hosts`` (see
            :func:`~langchain_image_embeddings.images.open_object_storage`).
        pdf_dpi: Dots per inch a PDF page address (``file.pdf#page=3``) is rendered at,
            lowered for a page that would exceed ``max_pixels`` (extra ``[pdf]``).
        max_pdf_pages: Refuse PDFs with more pages than this (code ``too_many_pages``).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import ImageLoadOptions, load_image

            image = load_image("photo.jpg", ImageLoadOptions(max_pixels=50_000_000))
    """

    max_pixels: int = 64_000_000
    max_bytes: int = 64 * 1024 * 1024
    max_aspect_ratio: float = 100.0
    allow_remote: bool = False
    timeout: float = 10.0
    total_timeout: float = 30.0
    max_redirects: int = 3
    allowed_hosts: tuple[str, ...] = ()
    background: tuple[int, int, int] = (255, 255, 255)
    formats: tuple[str, ...] = field(default=DEFAULT_FORMATS)
    apply_exif_orientation: bool = True
    root: str | None = None
    allow_truncated: bool = False
    allow_object_storage: bool = False
    pdf_dpi: float = 150.0
    max_pdf_pages: int = 5_000

    def __post_init__(self) -> None:
        # Checked here, naming the option: a bad value would otherwise surface as a
        # misleading per-image error ("corrupt" for every file with formats="JPEG").
        for name in ("max_pixels", "max_bytes", "max_pdf_pages"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():  # max_pixels=1e8
                value = int(value)
                object.__setattr__(self, name, value)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ImageLoadOptions.{name} must be a positive int, not {value!r}")
        try:
            ratio_ok = self.max_aspect_ratio >= 1
            timeouts_ok = self.timeout > 0 and self.total_timeout > 0
        except TypeError:
            ratio_ok = timeouts_ok = False
        try:
            dpi_ok = 1 <= self.pdf_dpi <= 2400
        except TypeError:
            dpi_ok = False
        if not dpi_ok:
            raise ValueError(
                f"ImageLoadOptions.pdf_dpi must be a number in [1, 2400], not {self.pdf_dpi!r}"
            )
        if not ratio_ok:
            raise ValueError("ImageLoadOptions.max_aspect_ratio must be a number >= 1")
        if not timeouts_ok:
            raise ValueError("ImageLoadOptions.timeout and total_timeout must be positive")
        if not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            raise ValueError("ImageLoadOptions.max_redirects must be an int >= 0")
        for name in ("allow_remote", "allow_object_storage"):
            # An opt-in into reading from the network: "false" or 1 must not pass for True.
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"ImageLoadOptions.{name} must be True or False, not {getattr(self, name)!r}"
                )
        object.__setattr__(self, "formats", _format_names(self.formats))
        object.__setattr__(self, "background", _rgb_colour(self.background))
        hosts = self.allowed_hosts
        object.__setattr__(
            self, "allowed_hosts", (hosts,) if isinstance(hosts, str) else tuple(hosts)
        )
        if self.root is not None:
            object.__setattr__(self, "root", os.fspath(self.root))


def _format_names(formats: object) -> tuple[str, ...]:
    """``formats`` as a tuple of Pillow format names (a single name is accepted)."""
    names = (formats,) if isinstance(formats, str) else formats
    if not isinstance(names, (tuple, list, set, frozenset)) or not names:
        raise ValueError(
            f"ImageLoadOptions.formats must be a non-empty tuple of format names, not {formats!r}"
        )
    out = tuple(str(n).upper() for n in names)
    unknown = [n for n in out if n not in Image.OPEN and n not in DEFAULT_FORMATS]
    if unknown:
        Image.init()  # registers the plugins the cheap preinit() leaves out, then look again
        unknown = [n for n in out if n not in Image.OPEN]
    if unknown:
        raise ValueError(f"ImageLoadOptions.formats: unknown image format(s) {unknown}")
    return out


def _rgb_colour(colour: object) -> tuple[int, int, int]:
    """``background`` as an RGB tuple; a colour name or ``#rrggbb`` is accepted."""
    from PIL import ImageColor

    value: tuple[int, ...]
    try:
        if isinstance(colour, str):
            value = ImageColor.getrgb(colour)[:3]
        else:
            value = tuple(int(c) for c in colour)  # type: ignore[attr-defined]
        if len(value) != 3 or not all(0 <= c <= 255 for c in value):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(
            f"ImageLoadOptions.background must be an RGB tuple of 0-255 ints or a colour "
            f"name, not {colour!r}"
        ) from None
    return value[0], value[1], value[2]


DEFAULT_OPTIONS = ImageLoadOptions()


def describe(source: object) -> str:
    """A short, printable description of an input for error messages."""
    if isinstance(source, str):
        if not source.strip():
            return repr(source)  # an empty or blank path must still show in the message
        if source[:5].lower() == "data:":
            head = source[: min(40, source.find(",") + 1 if "," in source else 40)]
            return f"{head}... ({len(source)} chars)"
        return source if len(source) <= 300 else source[:300] + "..."
    if isinstance(source, os.PathLike):
        return str(os.fspath(source))
    if isinstance(source, ImageSource):
        return describe(source.source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{type(source).__name__} of {len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL.Image mode={source.mode} size={source.size[0]}x{source.size[1]}>"
    shape = getattr(source, "shape", None)
    dtype = getattr(source, "dtype", None)
    if shape is not None and dtype is not None:
        return f"<array shape={tuple(shape)} dtype={dtype}>"
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return name
    return f"<{type(source).__name__}>"


def fail(source: object, reason: str, code: str) -> ImageLoadError:
    """The :class:`ImageLoadError` for ``source`` (described with :func:`describe`)."""
    return ImageLoadError(describe(source), reason, code)


def check_geometry(size: tuple[int, int], source: object, opts: ImageLoadOptions) -> None:
    """Refuse a zero size, more pixels than ``max_pixels`` or a too extreme aspect ratio."""
    width, height = size
    if width <= 0 or height <= 0:
        raise fail(source, f"invalid size {width}x{height}", "bad_geometry")
    if width * height > opts.max_pixels:
        raise fail(
            source,
            f"{width}x{height} = {width * height} pixels exceeds the limit of {opts.max_pixels} "
            "(raise ImageLoadOptions.max_pixels to accept it)",
            "decompression_bomb",
        )
    ratio = max(width, height) / min(width, height)
    if ratio > opts.max_aspect_ratio:
        raise fail(
            source,
            f"aspect ratio {ratio:.0f}:1 of {width}x{height} exceeds the limit of "
            f"{opts.max_aspect_ratio:.0f}:1",
            "bad_geometry",
        )
