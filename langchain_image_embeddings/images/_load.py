"""Turn any supported image input into an RGB ``PIL.Image``, safely.

Supported inputs (see :data:`ImageInput`):

* a local path (``str`` or ``os.PathLike``) or a ``file://`` URI,
* an ``http(s)://`` URL (only when ``ImageLoadOptions(allow_remote=True)``),
* a ``data:image/...;base64,...`` URI,
* raw ``bytes`` / ``bytearray`` / ``memoryview`` or a binary file-like object,
* a ``PIL.Image.Image``,
* a numpy array: ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4``; ``uint8``, ``uint16``, ``bool``,
  or float in ``[0, 1]``.

Every failure raises :class:`~langchain_image_embeddings.errors.ImageLoadError` naming the
input and the reason. A plain string is never guessed to be base64: encoded images must be
``data:`` URIs or passed as bytes.

This module dispatches an input to the layer that reads it and re-exports their public
names (import them from here): :mod:`~langchain_image_embeddings.images._options` (limits,
formats, error naming), :mod:`~langchain_image_embeddings.images._files` (local files under
the guards, ``data:`` URIs, downloads), :mod:`~langchain_image_embeddings.images._decode`
(header checks, decoding, fast path, truncated data) and
:mod:`~langchain_image_embeddings.images._convert` (modes and arrays to RGB).
"""

from __future__ import annotations

import io
import os
import re
import urllib.parse
import urllib.request
from typing import IO, TYPE_CHECKING, Any, Union

from PIL import Image

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._convert import from_array, to_rgb
from langchain_image_embeddings.images._decode import decode, from_pil, open_image_header
from langchain_image_embeddings.images._files import (
    decode_data_uri,
    fetch_image_bytes,
    open_image_file,
    read_capped,
)
from langchain_image_embeddings.images._options import (
    DEFAULT_FORMATS,
    DEFAULT_OPTIONS,
    IMAGE_SUFFIXES,
    ImageLoadOptions,
    describe,
    fail,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_OPTIONS",
    "IMAGE_SUFFIXES",
    "ImageInput",
    "ImageLoadOptions",
    "decode_data_uri",
    "describe",
    "fetch_image_bytes",
    "load_image",
    "open_image_file",
    "open_image_header",
    "read_image_bytes",
    "resolve_uri",
    "uri_scheme",
    "to_rgb",
]

ImageInput = Union[
    str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image, "np.ndarray"
]
"""Anything :func:`load_image` accepts."""

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_WINDOWS_DRIVE = re.compile(r"^[a-zA-Z]:[\\/]")


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
        "bytes, file object, PIL image or numpy array",
        "invalid_input",
    )


def _given_bytes(source: bytes | bytearray | memoryview, opts: ImageLoadOptions) -> bytes:
    data = bytes(source)
    if not data:
        raise fail(source, "no bytes", "empty")
    if len(data) > opts.max_bytes:
        raise fail(
            source, f"{len(data)} bytes exceeds the {opts.max_bytes}-byte limit", "too_large"
        )
    return data


def _file_object_bytes(source: Any, opts: ImageLoadOptions) -> bytes:
    data = read_capped(source, opts.max_bytes, source)
    if not data:
        raise fail(source, "the file object returned no bytes", "empty")
    return data


def _from_string(
    source: str, opts: ImageLoadOptions, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    target = resolve_uri(source, opts)
    if isinstance(target, bytes):
        return decode(io.BytesIO(target), source, opts, draft_size)
    return _from_path(target, source, opts, draft_size)


def uri_scheme(source: str) -> str:
    """The lower-case URI scheme of a string input, ``""`` for a plain path (a Windows drive
    letter such as ``C:\\`` is a path, not a scheme).

    Example:
        >>> uri_scheme("S3://bucket/a.jpg"), uri_scheme("photos/a.jpg")
        ('s3', '')
    """
    match = _SCHEME.match(source)
    if match is None or _WINDOWS_DRIVE.match(source):
        return ""
    return match.group(1).lower()


def resolve_uri(source: str, options: ImageLoadOptions | None = None) -> bytes | str:
    """What a string input names: the bytes of a ``data:`` URI or of an allowed
    ``http(s)://`` URL (fetched under the SSRF, size and time guards), else a local path
    (a plain path, or the path of a ``file://`` URI), not yet opened.

    Every reader of string inputs goes through here (:func:`load_image`,
    :func:`read_image_bytes`, the shard readers), so they accept and refuse the same URIs.

    Raises:
        ImageLoadError: Remote fetching disabled (``remote_disabled``), a ``file://`` URI
            naming a host or another scheme (``unsupported_scheme``), a failed fetch or a
            malformed data URI.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import resolve_uri

            resolve_uri("file:///photos/cat.jpg")   # '/photos/cat.jpg'
    """
    opts = options or DEFAULT_OPTIONS
    if source[:5].lower() == "data:":  # URI schemes are case-insensitive (RFC 3986)
        return decode_data_uri(source, opts)
    scheme = uri_scheme(source)
    if scheme:
        if scheme == "file":
            parsed = urllib.parse.urlparse(source)
            if parsed.netloc not in ("", "localhost"):
                raise fail(source, "file:// URIs must name a local path", "unsupported_scheme")
            return urllib.request.url2pathname(parsed.path)
        if scheme in ("http", "https"):
            if not opts.allow_remote:
                raise fail(
                    source,
                    "remote fetching is disabled; pass ImageLoadOptions(allow_remote=True) to enable it",
                    "remote_disabled",
                )
            return fetch_image_bytes(source, opts)
        if "://" in source:
            raise fail(
                source,
                f"unsupported URI scheme {scheme!r}; use a local path, file://, http(s):// or data:",
                "unsupported_scheme",
            )
    return source


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

    For decoders other than Pillow's (GPU JPEG decoding): paths, ``file://`` and
    ``http(s)://`` URLs, ``data:`` URIs, bytes and binary file objects give their bytes
    (regular files only, ``root`` confinement, ``max_bytes``, remote policy); decoded
    inputs (PIL images, arrays) and refused URIs (remote fetching off, unknown schemes) give
    ``None``: the Pillow path takes those (and raises the refusal). The caller still runs
    :func:`open_image_header` on the bytes before decoding them.

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
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _given_bytes(source, opts)
    path: str | None = None
    if isinstance(source, str):
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
