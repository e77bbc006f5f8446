"""An image's encoded bytes, read once, with the metadata of exactly those bytes.

:class:`ImageSource` is what :func:`~langchain_image_embeddings.images.read_image_source`
returns and what every reader of inputs accepts (it sits at the bottom of ``images/`` so the
error naming in :mod:`~langchain_image_embeddings.images._options` knows it too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ImageSource"]


@dataclass(frozen=True)
class ImageSource:
    """An image's encoded bytes, read once, and the metadata describing exactly those bytes.

    Hand it to :meth:`~langchain_image_embeddings.embeddings.ImageEmbeddings.embed_images`
    (or any reader of :data:`~langchain_image_embeddings.images.ImageInput`) and ``data`` is
    decoded as is: nothing is read or downloaded again, and errors name ``metadata["source"]``.

    Attributes:
        data: The encoded image (JPEG, PNG, ...), exactly as read.
        metadata: ``source``, ``sha256`` (of ``data``), ``width``, ``height``, ``format``,
            ``bytes`` and, for local files, ``mtime``. A PDF page or figure read by its
            address (``report.pdf#page=3``) has ``data`` = the rendered PNG and ``sha256`` =
            the page's content hash (the PDF's bytes and the page number, see
            :func:`~langchain_image_embeddings.images.page_digest`), plus the page's keys.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import ImageLoadOptions, read_image_source

            image = read_image_source(
                "https://example.org/cat.jpg", ImageLoadOptions(allow_remote=True)
            )
            image.sha256, image.metadata["width"], len(image.data)
    """

    data: bytes = field(repr=False)
    metadata: dict[str, Any]

    @property
    def source(self) -> str:
        """The input as the record names it (path, URI)."""
        return str(self.metadata["source"])

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of :attr:`data` (of a PDF page: its content hash)."""
        return str(self.metadata["sha256"])
