"""Reading one input of a shard: its bytes and the metadata a store records for it.

Every engine reads inputs here, so an image gets the same ``source``, ``sha256`` and
metadata (``width``, ``height``, ``format``, ``bytes``, ``mtime`` for files) as
``add_images`` / ``sync_directory`` give it, and the same bytes reach the decoder. Local
paths and ``file://`` URIs go through the package's file checks
(:func:`~langchain_image_embeddings.images.open_image_file`); ``http(s)://`` and ``data:``
URIs through its fetch and data-URI guards; object-storage URIs (``s3://``, ``gs://``,
``hdfs://``, ``abfs://`` ...) through pyarrow's filesystems.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_image_embeddings.document_loaders import describe_image_bytes
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._files import open_image_file
from langchain_image_embeddings.images._load import resolve_uri, uri_scheme
from langchain_image_embeddings.images._options import ImageLoadOptions

#: URI schemes read through ``pyarrow.fs.FileSystem.from_uri``.
PYARROW_SCHEMES = frozenset({"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss"})


def read_input(uri: str, options: ImageLoadOptions | None = None) -> tuple[dict[str, Any], bytes]:
    """Read an input's bytes and describe it (header only; pixels are decoded later).

    Returns:
        ``(metadata, data)``: ``metadata`` has ``source``, ``sha256``, ``width``,
        ``height``, ``format``, ``bytes`` and, for local files, ``mtime``.

    Raises:
        ImageLoadError: The input cannot be read or is not an image (with its code).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.scale.inputs import read_input

            meta, data = read_input("photos/cat.jpg")
            meta["sha256"], len(data)
    """
    opts = options or ImageLoadOptions()
    scheme = uri_scheme(uri)
    if scheme in PYARROW_SCHEMES:
        data = _read_pyarrow(uri, opts)
        return describe_image_bytes(data, uri, opts), data
    target = resolve_uri(uri, opts)  # load_image's dispatch: data:, http(s)://, file://, paths
    if isinstance(target, bytes):
        return describe_image_bytes(target, uri, opts), target
    if scheme == "file":  # the record keeps the URI as its source
        return _read_file(target, uri, opts)
    return _read_file(os.path.abspath(uri), None, opts)


def _read_file(
    path: str, source: str | None, opts: ImageLoadOptions
) -> tuple[dict[str, Any], bytes]:
    fh, st = open_image_file(path, opts, source=source or path)
    try:
        with fh:
            data = fh.read(opts.max_bytes + 1)
    except OSError as exc:
        raise ImageLoadError(source or path, f"cannot read: {exc.strerror}", "not_found") from exc
    if len(data) > opts.max_bytes:  # the file grew after the size check
        raise ImageLoadError(
            source or path, f"more than the {opts.max_bytes}-byte limit", "too_large"
        )
    meta = describe_image_bytes(data, source or path, opts)
    meta["mtime"] = float(st.st_mtime)  # what describe_image_file records for a file
    return meta, data


def _read_pyarrow(uri: str, opts: ImageLoadOptions) -> bytes:
    from langchain_image_embeddings.scale._deps import require_pyarrow

    require_pyarrow()
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
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
