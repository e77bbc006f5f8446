"""Any image input to bytes to an RGB ``PIL.Image``, under the same guards everywhere.

Supported inputs (:data:`ImageInput`): local paths and ``file://`` URIs, ``http(s)://`` URLs
(opt-in), ``data:`` URIs, bytes and binary file objects, ``PIL`` images and numpy arrays.
Every failure raises :class:`~langchain_image_embeddings.errors.ImageLoadError` naming the
input and the reason.

Example:
    .. code-block:: python

        from langchain_image_embeddings.images import ImageLoadOptions, load_image

        image = load_image("photo.jpg", ImageLoadOptions(max_pixels=50_000_000))
"""

from __future__ import annotations

from langchain_image_embeddings.images._load import (
    ImageInput,
    load_image,
    read_image_bytes,
    uri_scheme,
)
from langchain_image_embeddings.images._options import (
    DEFAULT_FORMATS,
    DEFAULT_OPTIONS,
    IMAGE_SUFFIXES,
    ImageLoadOptions,
)

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_OPTIONS",
    "IMAGE_SUFFIXES",
    "ImageInput",
    "ImageLoadOptions",
    "load_image",
    "read_image_bytes",
    "uri_scheme",
]
