"""Encoded image bytes from their sources, under the package's guards: local files
(:func:`open_image_file`: regular files only, size caps, ``root`` confinement without a
race), ``data:`` URIs (:func:`decode_data_uri`) and ``http(s)://`` downloads
(:func:`fetch_image_bytes`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import urllib.parse
from typing import IO

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._options import DEFAULT_OPTIONS, ImageLoadOptions, fail

# Flags for opening image files: never block on a FIFO swapped in after the stat, binary on
# Windows; O_NOFOLLOW/O_DIRECTORY walk the path under ImageLoadOptions.root (see _open_confined).
_O_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CAN_WALK = bool(_O_NOFOLLOW and _O_DIRECTORY) and os.open in os.supports_dir_fd


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
        raise fail(src, "the path contains a NUL byte", "invalid_input")
    try:
        if opts.root is not None:
            fd = _open_confined(name, src, opts)
        else:
            _check_stat(os.stat(name), src, opts)  # devices and FIFOs are never opened
            fd = os.open(name, _O_READ | _O_CLOEXEC)
    except ImageLoadError:
        raise
    except (FileNotFoundError, NotADirectoryError):
        raise fail(src, "no such file", "not_found") from None
    except OSError as exc:
        raise fail(src, f"cannot open the file: {exc.strerror or exc}", "not_found") from exc
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
        raise fail(source, f"{kind}; only regular files are read", "not_a_file")
    if st.st_size == 0:
        raise fail(source, "the file is empty (0 bytes)", "empty")
    if st.st_size > opts.max_bytes:
        raise fail(
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
        raise fail(source, f"resolves outside the allowed root {root}", "outside_root")
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
                raise fail(
                    source,
                    f"a folder on the path under the allowed root {root} is a symlink or not a "
                    "folder any more (changed while loading); refused",
                    "outside_root",
                ) from exc
            os.close(dir_fd)
            dir_fd = next_fd
        if not parts:
            raise fail(source, "a directory; only regular files are read", "not_a_file")
        st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise fail(
                source,
                "a symlink loop, or a symlink swapped in while loading; refused",
                "not_found",
            )
        _check_stat(st, source, opts)
        return os.open(parts[-1], _O_READ | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def read_capped(fh: IO[bytes], limit: int, source: object) -> bytes:
    """Read at most ``limit`` bytes of a binary file object; more is ``too_large``."""
    try:
        data = fh.read(limit + 1)
    except ValueError as exc:  # e.g. "read of closed file"
        raise fail(source, f"the file object cannot be read: {exc}", "invalid_input") from exc
    except OSError as exc:  # an I/O error of this input, not of the batch
        raise fail(source, f"cannot read: {exc.strerror or exc}", "not_found") from exc
    if not isinstance(data, (bytes, bytearray)):
        raise fail(source, "the file object must be opened in binary mode", "invalid_input")
    if len(data) > limit:
        raise fail(source, f"more than the {limit}-byte limit", "too_large")
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
        raise fail(
            uri, "malformed data URI: no ',' separating header and payload", "invalid_base64"
        )
    params = header[5:].split(";")
    if "base64" not in (p.strip().lower() for p in params[1:]):
        raise fail(
            uri, "only base64-encoded data URIs are supported (';base64,')", "invalid_base64"
        )
    media = params[0].strip().lower()
    if media and not media.startswith("image/"):
        raise fail(uri, f"media type {media!r} is not an image", "unsupported_format")
    # Whitespace (line-wrapped base64) and url-safe alphabets are accepted; padding is restored.
    compact = re.sub(r"\s+", "", urllib.parse.unquote(payload))
    if len(compact) * 3 // 4 > opts.max_bytes:
        raise fail(uri, f"payload exceeds the {opts.max_bytes}-byte limit", "too_large")
    compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise fail(uri, f"invalid base64 payload: {exc}", "invalid_base64") from exc
    if not data:
        raise fail(uri, "the data URI has an empty payload", "empty")
    return data


def fetch_image_bytes(url: str, options: ImageLoadOptions | None = None) -> bytes:
    """Download an ``http(s)://`` URL under the options' SSRF and size limits.

    Whether remote fetching is allowed (``allow_remote``) is the caller's decision; see
    :func:`langchain_image_embeddings.images._fetch.fetch_url` for the guards.

    Raises:
        ImageLoadError: ``blocked_url``, ``unsupported_scheme``, ``too_large``, ``empty`` or
            ``fetch_failed``.
    """
    opts = options or DEFAULT_OPTIONS
    from langchain_image_embeddings.images._fetch import FetchLimits, fetch_url

    limits = FetchLimits(
        max_bytes=opts.max_bytes,
        timeout=opts.timeout,
        total_timeout=opts.total_timeout,
        max_redirects=opts.max_redirects,
        allowed_hosts=tuple(h.lower() for h in opts.allowed_hosts),
    )
    return fetch_url(url, limits)
