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
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import re
import stat
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Union

from PIL import Image, ImageOps, UnidentifiedImageError

from langchain_image_embeddings.errors import ImageLoadError

if TYPE_CHECKING:
    import numpy as np

ImageInput = Union[
    str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image, "np.ndarray"
]
"""Anything :func:`load_image` accepts."""

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

# Flags for opening image files: never block on a FIFO swapped in after the stat, binary on
# Windows; O_NOFOLLOW/O_DIRECTORY walk the path under ImageLoadOptions.root (see _open_confined).
_O_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CAN_WALK = bool(_O_NOFOLLOW and _O_DIRECTORY) and os.open in os.supports_dir_fd

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_WINDOWS_DRIVE = re.compile(r"^[a-zA-Z]:[\\/]")


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
            :mod:`langchain_image_embeddings.fetch`.
        background: RGB colour that transparent pixels are composited on.
        formats: Pillow format names whose decoders may run.
        apply_exif_orientation: Rotate/flip according to the EXIF orientation tag.
        allow_truncated: Decode what a truncated file holds instead of refusing it (missing
            rows are filled by the decoder). Scoped to each load, never process-wide.
        root: When set, local paths must resolve (symlinks and ``..`` included) to a file
            under this directory; anything else is refused with code ``outside_root``.

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


DEFAULT_OPTIONS = ImageLoadOptions()


def describe(source: object) -> str:
    """A short, printable description of an input for error messages."""
    if isinstance(source, str):
        if source.startswith("data:"):
            head = source[: min(40, source.find(",") + 1 if "," in source else 40)]
            return f"{head}... ({len(source)} chars)"
        return source if len(source) <= 300 else source[:300] + "..."
    if isinstance(source, os.PathLike):
        return str(os.fspath(source))
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


def _fail(source: object, reason: str, code: str) -> ImageLoadError:
    return ImageLoadError(describe(source), reason, code)


def _load(
    source: ImageInput, opts: ImageLoadOptions, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    if isinstance(source, Image.Image):
        return _from_pil(source, opts)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(_given_bytes(source, opts)), source, opts, draft_size)
    if isinstance(source, str):
        return _from_string(source, opts, draft_size)
    if isinstance(source, os.PathLike):
        return _from_path(os.fspath(source), source, opts, draft_size)
    if hasattr(source, "read"):
        return _decode(io.BytesIO(_file_object_bytes(source, opts)), source, opts, draft_size)
    if hasattr(source, "__array_interface__") or type(source).__module__ == "numpy":
        return _from_array(source, opts)
    raise _fail(
        source,
        f"unsupported input type {type(source).__name__}; expected a path, URL, data URI, "
        "bytes, file object, PIL image or numpy array",
        "invalid_input",
    )


def _given_bytes(source: bytes | bytearray | memoryview, opts: ImageLoadOptions) -> bytes:
    data = bytes(source)
    if not data:
        raise _fail(source, "no bytes", "empty")
    if len(data) > opts.max_bytes:
        raise _fail(
            source, f"{len(data)} bytes exceeds the {opts.max_bytes}-byte limit", "too_large"
        )
    return data


def _file_object_bytes(source: Any, opts: ImageLoadOptions) -> bytes:
    data = _read_capped(source, opts.max_bytes, source)
    if not data:
        raise _fail(source, "the file object returned no bytes", "empty")
    return data


def _from_string(
    source: str, opts: ImageLoadOptions, draft_size: tuple[int, int] | None = None
) -> Image.Image:
    target = resolve_uri(source, opts)
    if isinstance(target, bytes):
        return _decode(io.BytesIO(target), source, opts, draft_size)
    return _from_path(target, source, opts, draft_size)


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
    if source.startswith("data:"):
        return decode_data_uri(source, opts)
    match = _SCHEME.match(source)
    if match and not _WINDOWS_DRIVE.match(source):
        scheme = match.group(1).lower()
        if scheme == "file":
            parsed = urllib.parse.urlparse(source)
            if parsed.netloc not in ("", "localhost"):
                raise _fail(source, "file:// URIs must name a local path", "unsupported_scheme")
            return urllib.request.url2pathname(parsed.path)
        if scheme in ("http", "https"):
            if not opts.allow_remote:
                raise _fail(
                    source,
                    "remote fetching is disabled; pass ImageLoadOptions(allow_remote=True) to enable it",
                    "remote_disabled",
                )
            return fetch_image_bytes(source, opts)
        if "://" in source:
            raise _fail(
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
            return _decode(fh, source, opts, draft_size)
        except OSError as exc:  # pragma: no cover - _decode maps decoder errors itself
            raise _fail(source, f"cannot read the file: {exc.strerror}", "not_found") from exc


def open_image_file(
    path: str | os.PathLike[str],
    options: ImageLoadOptions | None = None,
    *,
    source: object | None = None,
) -> tuple[IO[bytes], os.stat_result]:
    """Open a local file for reading an image from it, with the package's file checks.

    Only regular files are opened (a FIFO swapped in meanwhile cannot block: the file is
    opened non-blocking and checked again after opening); empty files and files over
    ``max_bytes`` are refused. With ``options.root`` the path is confined to the root
    without a race: after the symlink-resolving check, the file is opened by walking the
    resolved path from the root's descriptor, one component at a time, never following a
    symlink, so a folder swapped for a symlink meanwhile is refused, not followed.

    Args:
        path: The file (relative paths are taken under ``options.root`` when it is set).
        options: Limits and policies; :data:`DEFAULT_OPTIONS` when omitted.
        source: The input to name in errors (default: ``path``).

    Returns:
        The open binary file (the caller closes it) and its ``fstat``.

    Raises:
        ImageLoadError: ``invalid_input``, ``outside_root``, ``not_found``, ``not_a_file``,
            ``empty`` or ``too_large``.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import open_image_file

            fh, st = open_image_file("photo.jpg")
            with fh:
                head = fh.read(16)
    """
    opts = options or DEFAULT_OPTIONS
    src: object = path if source is None else source
    name = os.fspath(path)
    if "\x00" in name:
        raise _fail(src, "the path contains a NUL byte", "invalid_input")
    try:
        if opts.root is not None:
            fd = _open_confined(name, src, opts)
        else:
            _check_stat(os.stat(name), src, opts)  # devices and FIFOs are never opened
            fd = os.open(name, _O_READ | _O_CLOEXEC)
    except ImageLoadError:
        raise
    except (FileNotFoundError, NotADirectoryError):
        raise _fail(src, "no such file", "not_found") from None
    except OSError as exc:
        raise _fail(src, f"cannot open the file: {exc.strerror or exc}", "not_found") from exc
    try:
        st = os.fstat(fd)
        _check_stat(st, src, opts)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return fh, st


def _check_stat(st: os.stat_result, source: object, opts: ImageLoadOptions) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise _fail(source, f"{kind}; only regular files are read", "not_a_file")
    if st.st_size == 0:
        raise _fail(source, "the file is empty (0 bytes)", "empty")
    if st.st_size > opts.max_bytes:
        raise _fail(
            source, f"{st.st_size} bytes exceeds the {opts.max_bytes}-byte limit", "too_large"
        )


def _open_confined(path: str, source: object, opts: ImageLoadOptions) -> int:
    """Open ``path`` (relative to ``root``) read-only, refusing anything outside ``root``.

    The path is resolved (symlinks inside the root may point elsewhere inside it) and
    checked, then the *resolved* path is opened from the root's descriptor component by
    component with ``O_NOFOLLOW``: it holds no symlink, so one found now was swapped in
    after the check, and the open fails instead of following it.
    """
    root = str(opts.root)
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, path))
    if os.path.commonpath([real, real_root]) != real_root:
        raise _fail(source, f"resolves outside the allowed root {root}", "outside_root")
    if not _CAN_WALK:  # pragma: no cover - platforms without openat (Windows)
        _check_stat(os.stat(real), source, opts)
        return os.open(real, _O_READ | _O_CLOEXEC)
    parts = [p for p in os.path.relpath(real, real_root).split(os.sep) if p not in ("", ".")]
    dir_fd = os.open(real_root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(
                    part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd
                )
            except FileNotFoundError:
                raise
            except OSError as exc:  # ELOOP / ENOTDIR: a symlink where a folder was
                raise _fail(
                    source,
                    f"a folder on the path under the allowed root {root} is a symlink or not a "
                    "folder any more (changed while loading); refused",
                    "outside_root",
                ) from exc
            os.close(dir_fd)
            dir_fd = next_fd
        if not parts:
            raise _fail(source, "a directory; only regular files are read", "not_a_file")
        st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise _fail(
                source,
                "a symlink loop, or a symlink swapped in while loading; refused",
                "not_found",
            )
        _check_stat(st, source, opts)
        return os.open(parts[-1], _O_READ | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def _read_capped(fh: IO[bytes], limit: int, source: object) -> bytes:
    data = fh.read(limit + 1)
    if not isinstance(data, (bytes, bytearray)):
        raise _fail(source, "the file object must be opened in binary mode", "invalid_input")
    if len(data) > limit:
        raise _fail(source, f"more than the {limit}-byte limit", "too_large")
    return bytes(data)


def decode_data_uri(uri: str, options: ImageLoadOptions | None = None) -> bytes:
    """The encoded image bytes of a ``data:image/...;base64,`` URI, under ``max_bytes``.

    Raises:
        ImageLoadError: ``invalid_base64``, ``unsupported_format``, ``too_large`` or ``empty``.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import decode_data_uri

            decode_data_uri("data:image/png;base64,iVBORw0KGgo=")  # the 8-byte PNG signature
    """
    opts = options or DEFAULT_OPTIONS
    header, sep, payload = uri.partition(",")
    if not sep:
        raise _fail(
            uri, "malformed data URI: no ',' separating header and payload", "invalid_base64"
        )
    params = header[5:].split(";")
    if "base64" not in (p.strip().lower() for p in params[1:]):
        raise _fail(
            uri, "only base64-encoded data URIs are supported (';base64,')", "invalid_base64"
        )
    media = params[0].strip().lower()
    if media and not media.startswith("image/"):
        raise _fail(uri, f"media type {media!r} is not an image", "unsupported_format")
    # Whitespace (line-wrapped base64) and url-safe alphabets are accepted; padding is restored.
    compact = re.sub(r"\s+", "", urllib.parse.unquote(payload))
    if len(compact) * 3 // 4 > opts.max_bytes:
        raise _fail(uri, f"payload exceeds the {opts.max_bytes}-byte limit", "too_large")
    compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(uri, f"invalid base64 payload: {exc}", "invalid_base64") from exc
    if not data:
        raise _fail(uri, "the data URI has an empty payload", "empty")
    return data


def fetch_image_bytes(url: str, options: ImageLoadOptions | None = None) -> bytes:
    """Download an ``http(s)://`` URL under the options' SSRF and size limits.

    Whether remote fetching is allowed (``allow_remote``) is the caller's decision; see
    :func:`langchain_image_embeddings.fetch.fetch_url` for the guards.

    Raises:
        ImageLoadError: ``blocked_url``, ``unsupported_scheme``, ``too_large``, ``empty`` or
            ``fetch_failed``.
    """
    opts = options or DEFAULT_OPTIONS
    from langchain_image_embeddings.fetch import FetchLimits, fetch_url

    limits = FetchLimits(
        max_bytes=opts.max_bytes,
        timeout=opts.timeout,
        total_timeout=opts.total_timeout,
        max_redirects=opts.max_redirects,
        allowed_hosts=tuple(h.lower() for h in opts.allowed_hosts),
    )
    return fetch_url(url, limits)


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
        return _read_capped(fh, opts.max_bytes, source)


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
            raise _fail(source, f"decompression bomb refused: {exc}", "decompression_bomb") from exc
        except UnidentifiedImageError as exc:
            allowed = ", ".join(opts.formats)
            raise _fail(
                source,
                f"not an image, or not one of the allowed formats ({allowed})",
                "unsupported_format",
            ) from exc
        except Exception as exc:  # header parsers raise many types on hostile data
            raise _fail(source, f"cannot parse the image header: {exc}", "corrupt") from exc
    _check_geometry(image.size, source, opts)
    return image


def _decode(
    fp: IO[bytes],
    source: object,
    opts: ImageLoadOptions,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
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
                image = _decode_truncated(fp, image.format, source, opts)
            else:
                reason = (
                    "the image data is truncated"
                    if code == "truncated"
                    else f"cannot decode: {exc}"
                )
                raise _fail(source, reason, code) from exc
        except Exception as exc:  # decoders raise many types on hostile data
            raise _fail(source, f"cannot decode: {type(exc).__name__}: {exc}", "corrupt") from exc
        decoded: Image.Image = image
        if draft_size is not None:
            decoded = _reduce_early(image, draft_size, opts)
        try:
            return to_rgb(decoded, opts)
        except Exception as exc:  # e.g. a mode conversion Pillow cannot do on this data
            raise _fail(
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
    fp: IO[bytes], fmt: str | None, source: object, opts: ImageLoadOptions
) -> Any:
    """Decode what a truncated file holds (missing rows stay grey/black), for this load only.

    Pillow's ``LOAD_TRUNCATED_IMAGES`` is process-wide: flipping it would let truncated files
    through in every other thread too. An incremental parser yields the partial image
    instead, and it is kept only if it is the same (allowed) format we identified.
    """
    from PIL import ImageFile

    fp.seek(0)
    parser = ImageFile.Parser()
    try:
        parser.feed(fp.read(opts.max_bytes))
    except Exception as exc:
        raise _fail(source, f"cannot decode the truncated data: {exc}", "truncated") from exc
    partial = parser.image
    with contextlib.suppress(Exception):
        parser.close()
    if partial is None or partial.format != fmt or fmt not in opts.formats:
        raise _fail(source, "the image data is truncated and nothing could be decoded", "truncated")
    return partial


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


def _check_geometry(size: tuple[int, int], source: object, opts: ImageLoadOptions) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise _fail(source, f"invalid size {width}x{height}", "bad_geometry")
    if width * height > opts.max_pixels:
        raise _fail(
            source,
            f"{width}x{height} = {width * height} pixels exceeds the limit of {opts.max_pixels} "
            "(raise ImageLoadOptions.max_pixels to accept it)",
            "decompression_bomb",
        )
    ratio = max(width, height) / min(width, height)
    if ratio > opts.max_aspect_ratio:
        raise _fail(
            source,
            f"aspect ratio {ratio:.0f}:1 of {width}x{height} exceeds the limit of "
            f"{opts.max_aspect_ratio:.0f}:1",
            "bad_geometry",
        )


def _from_pil(image: Image.Image, opts: ImageLoadOptions) -> Image.Image:
    try:
        image.load()
    except (ValueError, AttributeError) as exc:
        raise _fail(image, f"the PIL image cannot be read ({exc})", "invalid_input") from exc
    except OSError as exc:
        raise _fail(image, f"cannot decode: {exc}", "corrupt") from exc
    _check_geometry(image.size, image, opts)
    return to_rgb(image, opts)


def _from_array(array: Any, opts: ImageLoadOptions) -> Image.Image:
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
    elif arr.dtype == np.uint16:
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
    _check_geometry(image.size, desc, opts)
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
