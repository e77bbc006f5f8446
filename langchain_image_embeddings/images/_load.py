"""Turn any supported image input into an RGB ``PIL.Image``, safely.

Supported inputs (see :data:`ImageInput`):

* a local path (``str`` or ``os.PathLike``) or a ``file://`` URI,
* a page or a figure of a local PDF by its address (``report.pdf#page=3``,
  ``report.pdf#page=3&figure=2``; extra ``[pdf]``),
* an ``http(s)://`` URL (only when ``ImageLoadOptions(allow_remote=True)``),
* a ``data:image/...;base64,...`` URI,
* raw ``bytes`` / ``bytearray`` / ``memoryview`` or a binary file-like object,
* an :class:`~langchain_image_embeddings.images.ImageSource` (bytes already read: decoded as
  they are, never read again),
* a ``PIL.Image.Image``,
* a numpy array: ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4``; ``uint8``, ``uint16``, ``bool``,
  or float in ``[0, 1]``.

Every failure raises :class:`~langchain_image_embeddings.errors.ImageLoadError` naming the
input and the reason. A plain string is never guessed to be base64: encoded images must be
``data:`` URIs or passed as bytes.

This module dispatches an input to the module that reads it:
:mod:`~langchain_image_embeddings.images._read` (what a string names, the one reader of
bytes and :class:`~langchain_image_embeddings.images.ImageSource`),
:mod:`~langchain_image_embeddings.images._files` (local files under the guards),
:mod:`~langchain_image_embeddings.images._decode` (header checks, decoding, fast path,
truncated data) and :mod:`~langchain_image_embeddings.images._convert` (modes and arrays to
RGB). Import the public names from :mod:`langchain_image_embeddings.images`.
"""

from __future__ import annotations

import io
import os
from typing import IO, TYPE_CHECKING, Any, Union

from PIL import Image

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._convert import from_array
from langchain_image_embeddings.images._decode import decode, from_pil
from langchain_image_embeddings.images._files import open_image_file, read_capped
from langchain_image_embeddings.images._options import DEFAULT_OPTIONS, ImageLoadOptions, fail
from langchain_image_embeddings.images._pdf import load_address, parse_address, read_address
from langchain_image_embeddings.images._read import resolve_uri
from langchain_image_embeddings.images._source import ImageSource

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ImageInput", "load_image", "read_image_bytes"]

ImageInput = Union[
    str,
    "os.PathLike[str]",
    bytes,
    bytearray,
    memoryview,
    IO[bytes],
    Image.Image,
    "np.ndarray",
    ImageSource,
]
"""Anything :func:`load_image` accepts."""


def load_image(
    source: ImageInput,
    options: ImageLoadOptions | None = None,
    *,
    index: int | None = None,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Load one image input as an RGB ``PIL.Image``.

    Args:
        source: Any :data:`ImageInput`.
        options: Limits and policies; :data:`DEFAULT_OPTIONS` when omitted.
        index: Position of the input in a batch, recorded in any error raised.
        draft_size: ``(width, height)`` the returned (EXIF-rotated) image must at least
            cover. Encoded JPEGs are then decoded at the smallest DCT scale (1/2, 1/4, 1/8)
            that still covers it (``Image.draft``), which is several times faster for large
            photos. ``None`` (the default) decodes at full resolution. Other formats and
            in-memory images ignore it.

    Returns:
        A fully decoded RGB image (EXIF orientation applied, alpha composited).

    Raises:
        ImageLoadError: The input cannot be read; ``code`` says why.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import load_image

            image = load_image("data:image/png;base64,iVBORw0KGgo...")
    """
    opts = options or DEFAULT_OPTIONS
    try:
        return _load(source, opts, draft_size)
    except ImageLoadError as err:
        if index is not None:
            raise err.with_index(index) from err.__cause__
        raise


def _load(
    source: ImageInput, opts: ImageLoadOptions, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    if isinstance(source, ImageSource):
        data = _given_bytes(source.data, opts, source.source)
        return decode(io.BytesIO(data), source.source, opts, draft_size)
    if isinstance(source, Image.Image):
        return from_pil(source, opts)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode(io.BytesIO(_given_bytes(source, opts)), source, opts, draft_size)
    if isinstance(source, str):
        return _from_string(source, opts, draft_size)
    if isinstance(source, os.PathLike):
        return _from_path(os.fspath(source), source, opts, draft_size)
    if hasattr(source, "read"):
        return decode(io.BytesIO(_file_object_bytes(source, opts)), source, opts, draft_size)
    if hasattr(source, "__array_interface__") or type(source).__module__ == "numpy":
        return from_array(source, opts)
    raise fail(
        source,
        f"unsupported input type {type(source).__name__}; expected a path, URL, data URI, "
        "bytes, file object, ImageSource, PIL image or numpy array",
        "invalid_input",
    )


def _given_bytes(
    source: bytes | bytearray | memoryview, opts: ImageLoadOptions, name: object = None
) -> bytes:
    data = bytes(source)
    named = source if name is None else name
    if not data:
        raise fail(named, "no bytes", "empty")
    if len(data) > opts.max_bytes:
        raise fail(named, f"{len(data)} bytes exceeds the {opts.max_bytes}-byte limit", "too_large")
    return data


def _file_object_bytes(source: Any, opts: ImageLoadOptions) -> bytes:
    data = read_capped(source, opts.max_bytes, source)
    if not data:
        raise fail(source, "the file object returned no bytes", "empty")
    return data


def _from_string(
    source: str, opts: ImageLoadOptions, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    address = parse_address(source)
    if address is not None:  # a PDF page is rendered at the smallest scale covering the draft
        return load_address(address, opts, draft_size)
    target = resolve_uri(source, opts)
    if isinstance(target, bytes):
        return decode(io.BytesIO(target), source, opts, draft_size)
    return _from_path(target, source, opts, draft_size)


def _from_path(
    path: str,
    source: object,
    opts: ImageLoadOptions,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    fh, _ = open_image_file(path, opts, source=source)
    with fh:
        try:
            return decode(fh, source, opts, draft_size)
        except OSError as exc:  # pragma: no cover - _decode maps decoder errors itself
            raise fail(source, f"cannot read the file: {exc.strerror}", "not_found") from exc


def read_image_bytes(
    source: ImageInput, options: ImageLoadOptions | None = None, *, index: int | None = None
) -> bytes | None:
    """The encoded bytes of an input, read under the same checks as :func:`load_image`.

    For decoders other than Pillow's (GPU JPEG decoding) and for hashing what is decoded:
    paths, ``file://`` and ``http(s)://`` URLs, ``data:`` URIs, bytes, binary file objects
    and :class:`~langchain_image_embeddings.images.ImageSource` give their bytes (regular
    files only, ``root`` confinement, ``max_bytes``, remote policy); decoded inputs (PIL images, arrays) and refused URIs (remote fetching off, unknown schemes) give
    ``None``: the Pillow path takes those (and raises the refusal). The caller still runs
    :func:`~langchain_image_embeddings.images.open_image_header` on the bytes before
    decoding them.

    Raises:
        ImageLoadError: Exactly as :func:`load_image` would for the same input.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import read_image_bytes

            data = read_image_bytes("photo.jpg")
    """
    opts = options or DEFAULT_OPTIONS
    try:
        data = _read_bytes(source, opts)
    except ImageLoadError as err:
        if index is not None:
            raise err.with_index(index) from err.__cause__
        raise
    return data


def _read_bytes(source: ImageInput, opts: ImageLoadOptions) -> bytes | None:
    if isinstance(source, ImageSource):
        return _given_bytes(source.data, opts, source.source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _given_bytes(source, opts)
    path: str | None = None
    if isinstance(source, str):
        address = parse_address(source)
        if address is not None:
            return read_address(address, opts)[0]
        try:
            target = resolve_uri(source, opts)
        except ImageLoadError as err:
            if err.code in ("remote_disabled", "unsupported_scheme"):
                return None  # refused before any read: the CPU path raises the same error
            raise
        if isinstance(target, bytes):
            return target
        path = target
    elif isinstance(source, os.PathLike):
        path = os.fspath(source)
    elif hasattr(source, "read") and not isinstance(source, Image.Image):
        return _file_object_bytes(source, opts)
    if path is None:
        return None
    fh, _ = open_image_file(path, opts, source=source)
    with fh:
        return read_capped(fh, opts.max_bytes, source)
