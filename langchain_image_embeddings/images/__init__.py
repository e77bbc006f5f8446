"""Any image input to bytes to an RGB ``PIL.Image``, under the same guards everywhere.

Supported inputs (:data:`ImageInput`): local paths and ``file://`` URIs, ``http(s)://`` URLs
(opt-in), ``data:`` URIs, bytes and binary file objects, :class:`ImageSource` (bytes already
read), ``PIL`` images and numpy arrays. Every failure raises
:class:`~langchain_image_embeddings.errors.ImageLoadError` naming the input and the reason.

There is one reader of image bytes, :func:`read_image_source`: it reads an input once
(every scheme above, plus object storage such as ``s3://`` and ``gs://`` through pyarrow,
opt-in with ``allow_object_storage``) and describes those same bytes (``sha256``, size,
format). Handing the :class:`ImageSource` to the embeddings decodes that buffer, so nothing
is downloaded twice and the recorded hash is the hash of the pixels embedded.

A page or a figure of a local PDF has an address every reader understands
(``report.pdf#page=3``, ``report.pdf#page=3&figure=2``; extra ``[pdf]``): the page is
rendered (at ``ImageLoadOptions.pdf_dpi``) or the figure extracted by PDFium, under the
same caps plus ``max_pdf_pages``.

Example:
    .. code-block:: python

        from langchain_image_embeddings.images import (
            ImageLoadOptions,
            load_image,
            read_image_source,
        )

        image = load_image("photo.jpg", ImageLoadOptions(max_pixels=50_000_000))
        source = read_image_source("photo.jpg")
        source.metadata["sha256"], source.metadata["width"]
"""

from __future__ import annotations

from langchain_image_embeddings.images._decode import open_image_header
from langchain_image_embeddings.images._files import decode_data_uri, open_image_file
from langchain_image_embeddings.images._load import ImageInput, load_image, read_image_bytes
from langchain_image_embeddings.images._options import (
    DEFAULT_FORMATS,
    DEFAULT_OPTIONS,
    IMAGE_SUFFIXES,
    ImageLoadOptions,
)
from langchain_image_embeddings.images._pdf import (
    PDF_SUFFIX,
    FigureInfo,
    OpenPDF,
    PageAddress,
    PageInfo,
    absolute_document,
    address_metadata,
    is_pdf_path,
    open_pdf,
    open_pdf_file,
    page_address,
    page_digest,
    parse_address,
)
from langchain_image_embeddings.images._read import (
    PYARROW_SCHEMES,
    describe_image_bytes,
    describe_image_file,
    open_object_storage,
    read_image_source,
    resolve_uri,
    uri_scheme,
)
from langchain_image_embeddings.images._source import ImageSource

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_OPTIONS",
    "IMAGE_SUFFIXES",
    "PDF_SUFFIX",
    "PYARROW_SCHEMES",
    "FigureInfo",
    "ImageInput",
    "ImageLoadOptions",
    "ImageSource",
    "OpenPDF",
    "PageAddress",
    "PageInfo",
    "absolute_document",
    "address_metadata",
    "decode_data_uri",
    "describe_image_bytes",
    "describe_image_file",
    "is_pdf_path",
    "load_image",
    "open_image_file",
    "open_image_header",
    "open_object_storage",
    "open_pdf",
    "open_pdf_file",
    "page_address",
    "page_digest",
    "parse_address",
    "read_image_bytes",
    "read_image_source",
    "resolve_uri",
    "uri_scheme",
]
