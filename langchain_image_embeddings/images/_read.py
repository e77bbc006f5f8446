"""The one reader of image bytes: read an input once, describe the very bytes that were read.

What a string input names (:func:`uri_scheme`, :func:`resolve_uri`) is decided here for every
reader of the package, so they accept and refuse the same URIs. :func:`read_image_source`
reads an input's encoded bytes once and returns them with the metadata an image document
records (``source``, ``sha256``, ``width``, ``height``, ``format``, ``bytes``, and ``mtime``
for files) as an :class:`ImageSource`; the embeddings decode that same buffer when handed the
:class:`ImageSource`, so an ``http(s)`` image is downloaded once and its recorded hash is the
hash of the pixels embedded. Local paths and ``file://`` URIs go through the file checks
(:func:`~langchain_image_embeddings.images._files.open_image_file`); ``http(s)://`` and
``data:`` URIs through the fetch and data-URI guards; object-storage URIs (``s3://``,
``gs://``, ``hdfs://``, ``abfs://`` ...), only with ``allow_object_storage``, through
pyarrow's filesystems built by :func:`open_object_storage` (endpoints from configuration,
never from the URI, under the address policy of ``http(s)``).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import urllib.parse
import urllib.request
from typing import IO, Any

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._decode import open_image_header
from langchain_image_embeddings.images._fetch import is_public_address
from langchain_image_embeddings.images._files import (
    decode_data_uri,
    fetch_image_bytes,
    open_image_file,
    read_capped,
)
from langchain_image_embeddings.images._options import DEFAULT_OPTIONS, ImageLoadOptions, fail
from langchain_image_embeddings.images._pdf import is_pdf_path, parse_address, read_address
from langchain_image_embeddings.images._source import ImageSource

__all__ = [
    "PYARROW_SCHEMES",
    "describe_image_bytes",
    "describe_image_file",
    "open_object_storage",
    "read_image_source",
    "resolve_uri",
    "uri_scheme",
]

#: URI schemes read through ``pyarrow.fs.FileSystem.from_uri``.
PYARROW_SCHEMES = frozenset({"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss"})

#: Environment variables naming a configured endpoint, per scheme, in the order the backend
#: reads them (pyarrow's S3 through the AWS SDK, its GCS through google-cloud-cpp).
_ENDPOINT_VARIABLES: dict[str, tuple[str, ...]] = {
    "s3": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "gs": ("CLOUD_STORAGE_EMULATOR_ENDPOINT",),
    "gcs": ("CLOUD_STORAGE_EMULATOR_ENDPOINT",),
}

#: Schemes whose URI names a bucket only; the endpoint comes from configuration.
_BUCKET_SCHEMES = frozenset({"s3", "gs", "gcs"})
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Azure's own account hosts (``abfs://container@account.dfs.core.windows.net/...``).
_AZURE_HOSTS = (".dfs.core.windows.net", ".blob.core.windows.net")

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_WINDOWS_DRIVE = re.compile(r"^[a-zA-Z]:[\\/]")


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

    Every reader of string inputs goes through here (:func:`read_image_source`,
    :func:`~langchain_image_embeddings.images.load_image`,
    :func:`~langchain_image_embeddings.images.read_image_bytes`), so they accept and refuse
    the same URIs. Object-storage schemes are :func:`read_image_source`'s alone.

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


def read_image_source(
    source: str | os.PathLike[str], options: ImageLoadOptions | None = None
) -> ImageSource:
    """Read an input's bytes once and describe them (header only; pixels are decoded later).

    Every scheme the package reads: local paths (made absolute) and ``file://`` URIs (the
    record keeps the URI), ``http(s)://`` (only with ``allow_remote``, under the SSRF
    guards), ``data:`` URIs, and object storage through pyarrow (``s3://``, ``gs://``,
    ``gcs://``, ``hdfs://``, ``viewfs://``, ``abfs://``, ``abfss://``; extra ``[parquet]``),
    and the pages and figures of local PDFs by their address (``report.pdf#page=3``,
    ``report.pdf#page=3&figure=2``; extra ``[pdf]``): the page rendered at
    ``options.pdf_dpi`` (the figure at its own size) as PNG bytes, described by
    :func:`~langchain_image_embeddings.images.address_metadata` (its ``sha256`` is the
    page's content hash, from the PDF's bytes and the page number).

    Args:
        source: A path or URI (an ``os.PathLike`` is always a local path).
        options: Limits and policies; :data:`DEFAULT_OPTIONS` when omitted.

    Returns:
        The bytes and their metadata (``source``, ``sha256``, ``width``, ``height``,
        ``format``, ``bytes`` and, for local files, ``mtime``).

    Raises:
        ImageLoadError: The input cannot be read or is not an image (with its code).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import read_image_source

            image = read_image_source("photos/cat.jpg")
            image.metadata["sha256"], len(image.data)
    """
    opts = options or DEFAULT_OPTIONS
    if isinstance(source, os.PathLike):
        return _read_file(os.path.abspath(os.fspath(source)), None, opts)
    address = parse_address(source)
    if address is not None:
        data, metadata = read_address(address, opts)
        return ImageSource(data, metadata)
    scheme = uri_scheme(source)
    if scheme in PYARROW_SCHEMES:
        data = _read_pyarrow(source, opts)
        return ImageSource(data, describe_image_bytes(data, source, opts))
    target = resolve_uri(source, opts)  # data:, http(s)://, file://, paths
    if isinstance(target, bytes):
        return ImageSource(target, describe_image_bytes(target, source, opts))
    if scheme == "file":  # the record keeps the URI as its source
        return _read_file(target, source, opts)
    return _read_file(os.path.abspath(source), None, opts)


def describe_image_file(
    path: str | os.PathLike[str], options: ImageLoadOptions | None = None
) -> dict[str, Any]:
    """Metadata of one image file without decoding its pixels (``source`` is ``path`` as given).

    Returns:
        ``{"source", "sha256", "width", "height", "format", "bytes", "mtime"}``.

    Raises:
        ImageLoadError: Missing, not a regular file, empty, too large, or not an image.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import describe_image_file

            describe_image_file("photos/cat.jpg")["sha256"]
    """
    return _read_file(os.fspath(path), None, options or DEFAULT_OPTIONS).metadata


def describe_image_bytes(
    data: bytes, source: str, options: ImageLoadOptions | None = None
) -> dict[str, Any]:
    """Metadata of an in-memory encoded image (``mtime`` is absent).

    Returns:
        ``{"source", "sha256", "width", "height", "format", "bytes"}``.

    Raises:
        ImageLoadError: Empty, too large, or not an image.

    Example:
        .. code-block:: python

            from pathlib import Path

            from langchain_image_embeddings.images import describe_image_bytes

            describe_image_bytes(Path("cat.png").read_bytes(), "cat.png")["width"]
    """
    opts = options or DEFAULT_OPTIONS
    if not data:
        raise ImageLoadError(source, "no data", "empty")
    if len(data) > opts.max_bytes:
        raise ImageLoadError(source, f"more than the {opts.max_bytes}-byte limit", "too_large")
    return {
        "source": source,
        "sha256": hashlib.sha256(data).hexdigest(),
        **_header(io.BytesIO(data), source, opts),
        "bytes": len(data),
    }


def _header(fh: IO[bytes], source: str, opts: ImageLoadOptions) -> dict[str, Any]:
    """Parse only the header of an image: size and format, with the package's checks."""
    with open_image_header(fh, source, opts) as image:
        width, height = image.size
        return {"width": int(width), "height": int(height), "format": image.format or "UNKNOWN"}


def _read_file(path: str, source: str | None, opts: ImageLoadOptions) -> ImageSource:
    name = source or path
    if is_pdf_path(name):
        raise ImageLoadError(
            name,
            "a PDF holds pages, not one image: name a page (file.pdf#page=N) or load the file "
            "with langchain_image_embeddings.documents.PDFImageLoader",
            "unsupported_format",
        )
    fh, st = open_image_file(path, opts, source=name)
    with fh:
        data = read_capped(fh, opts.max_bytes, name)  # a file that grew after the size check
    meta = describe_image_bytes(data, name, opts)
    meta["mtime"] = float(st.st_mtime)
    return ImageSource(data, meta)


def open_object_storage(uri: str, options: ImageLoadOptions | None = None) -> tuple[Any, str]:
    """The pyarrow filesystem and path of an object-storage URI, under the package's policy.

    * Only with ``allow_object_storage`` (else ``remote_disabled``), like ``allow_remote``
      for ``http(s)``.
    * The endpoint never comes from the URI: a URI carrying options (``?endpoint_override=``,
      ``?scheme=`` ...), credentials or a port is refused (``blocked_url``); ``s3://``,
      ``gs://`` and ``gcs://`` name a bucket only, and the filesystem is built from
      ``scheme://bucket/path`` and the environment's configuration.
    * The address policy of ``http(s)`` applies to a configured endpoint
      (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3, ``CLOUD_STORAGE_EMULATOR_ENDPOINT``
      for GCS): one on a loopback, private, link-local ... address is refused (``blocked_url``)
      unless its host is in ``allowed_hosts``.
    * ``hdfs://`` / ``viewfs://`` and ``abfs(s)://`` name their endpoint in the URI (the
      namenode; an Azure account host or an emulator's ``host:port``): such a host must be in
      ``allowed_hosts``, except Azure's own ``*.dfs.core.windows.net`` /
      ``*.blob.core.windows.net`` account hosts; ``hdfs:///path`` uses the Hadoop
      configuration's namenode.

    The endpoint's name is resolved when checked and again by pyarrow when it connects (the
    connection cannot be pinned to the checked address): the check guards a configuration
    against pointing inside the network by mistake or by a planted variable, not against a
    DNS server that answers differently the second time.

    Args:
        uri: An object-storage URI (a scheme in :data:`PYARROW_SCHEMES`).
        options: Limits and policies; :data:`DEFAULT_OPTIONS` when omitted.

    Returns:
        ``(filesystem, path)`` as ``pyarrow.fs.FileSystem.from_uri`` gives them.

    Raises:
        ImageLoadError: ``remote_disabled``, ``blocked_url``, ``unsupported_scheme`` or
            ``fetch_failed`` (pyarrow cannot build the filesystem).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import ImageLoadOptions, open_object_storage

            options = ImageLoadOptions(allow_object_storage=True)
            filesystem, path = open_object_storage("s3://photos/cat.jpg", options)
    """
    opts = options or DEFAULT_OPTIONS
    scheme = uri_scheme(uri)
    if scheme not in PYARROW_SCHEMES:
        raise ImageLoadError(
            uri, f"{scheme or 'a path'} is not object storage", "unsupported_scheme"
        )
    if not opts.allow_object_storage:
        raise ImageLoadError(
            uri,
            "object storage is disabled; pass ImageLoadOptions(allow_object_storage=True) "
            "(imgemb: --allow-object-storage) to enable it",
            "remote_disabled",
        )
    safe = _configured_uri(uri, scheme, opts)
    require("pyarrow", "pyarrow")
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(safe)
    except Exception as exc:  # pyarrow raises OSError/ArrowException subclasses per backend
        raise ImageLoadError(uri, f"cannot open through pyarrow: {exc}", "fetch_failed") from exc
    return filesystem, path


def _configured_uri(uri: str, scheme: str, opts: ImageLoadOptions) -> str:
    """``uri`` rebuilt from its scheme, host and path alone, once its endpoint passed the
    policy of :func:`open_object_storage`."""
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ImageLoadError(uri, f"malformed URI: {exc}", "blocked_url") from exc
    # pyarrow honours endpoint_override / scheme / ... given in the URI's query: a URI from
    # a user's list could point object storage at loopback or a private address.
    if parts.query or parts.fragment:
        raise ImageLoadError(
            uri,
            "object-storage URIs may not carry options (endpoint_override, scheme, ...): "
            "configure the endpoint in the environment, not in the URI",
            "blocked_url",
        )
    if parts.password is not None:
        raise ImageLoadError(
            uri, "object-storage URIs may not carry credentials: configure them", "blocked_url"
        )
    host = parts.hostname or ""
    if scheme in _BUCKET_SCHEMES:
        if port is not None or parts.username is not None or not _BUCKET.match(parts.netloc):
            raise ImageLoadError(
                uri,
                f"{scheme}:// URIs name a bucket only (no credentials, host or port): the "
                "endpoint comes from the environment's configuration",
                "blocked_url",
            )
        _check_configured_endpoint(uri, scheme, opts)
    elif (
        host
        and not (scheme.startswith("abfs") and host.endswith(_AZURE_HOSTS))
        and not _allowed(host, opts)
    ):
        # hdfs://namenode:port, abfs://account@emulator:port: the URI names its endpoint.
        raise ImageLoadError(
            uri,
            f"the URI names the endpoint {host!r}; add it to ImageLoadOptions.allowed_hosts "
            "if you trust it",
            "blocked_url",
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _allowed(host: str, opts: ImageLoadOptions) -> bool:
    """Whether the caller named ``host`` in ``allowed_hosts`` (``[::1]`` = ``::1``)."""
    key = host.strip().lower().strip("[]")
    return key in {h.strip().lower().strip("[]") for h in opts.allowed_hosts}


def _check_configured_endpoint(uri: str, scheme: str, opts: ImageLoadOptions) -> None:
    """Refuse a configured endpoint on a non-public address whose host is not allowed."""
    for variable in _ENDPOINT_VARIABLES.get(scheme, ()):
        value = os.environ.get(variable, "").strip()
        if value:
            break
    else:
        return  # the service's own public endpoint
    try:
        endpoint = urllib.parse.urlsplit(value if "://" in value else f"//{value}")
        host, port = endpoint.hostname or "", endpoint.port
    except ValueError as exc:
        raise ImageLoadError(
            uri, f"malformed endpoint {variable}={value!r}: {exc}", "blocked_url"
        ) from exc
    if not host:
        raise ImageLoadError(uri, f"endpoint {variable}={value!r} names no host", "blocked_url")
    if _allowed(host, opts):
        return
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ImageLoadError(
            uri, f"cannot resolve the endpoint {variable}={value!r}: {exc}", "fetch_failed"
        ) from exc
    blocked = [str(i[4][0]) for i in infos if not is_public_address(str(i[4][0]))]
    if blocked:
        raise ImageLoadError(
            uri,
            f"the configured endpoint {variable}={value!r} resolves to non-public address "
            f"{blocked[0]}; refusing to read (add {host!r} to ImageLoadOptions.allowed_hosts "
            "if you trust it)",
            "blocked_url",
        )


def _read_pyarrow(uri: str, opts: ImageLoadOptions) -> bytes:
    filesystem, path = open_object_storage(uri, opts)
    require("pyarrow", "pyarrow")
    import pyarrow.fs as pafs

    try:
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise ImageLoadError(uri, "no such object", "not_found")
        if info.type != pafs.FileType.File:
            raise ImageLoadError(uri, "not a file", "not_a_file")
        if info.size is not None and info.size > opts.max_bytes:
            raise ImageLoadError(uri, f"more than the {opts.max_bytes}-byte limit", "too_large")
        with filesystem.open_input_stream(path) as stream:
            data = bytes(stream.read(opts.max_bytes + 1))
    except ImageLoadError:
        raise
    except Exception as exc:  # pyarrow raises OSError/ArrowException subclasses per backend
        raise ImageLoadError(uri, f"cannot read through pyarrow: {exc}", "fetch_failed") from exc
    if len(data) > opts.max_bytes:
        raise ImageLoadError(uri, f"more than the {opts.max_bytes}-byte limit", "too_large")
    return data
