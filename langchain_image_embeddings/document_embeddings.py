"""The "image document" view of :class:`~langchain_image_embeddings.ImageEmbeddings`.

LangChain vector stores call ``embed_documents(texts)`` on the ``page_content`` of the
documents they store and ``embed_query(text)`` on queries. For image documents the
``page_content`` is the image's URI, so this view embeds **documents as images** and
**queries as text** (CLIP-type models) or, with ``query="image"``, queries as image URIs.
Any stock LangChain ``VectorStore`` and the incremental indexing API
(:func:`langchain_core.indexing.index`) then work on images unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor

from langchain_image_embeddings.errors import EncoderError

if TYPE_CHECKING:
    from langchain_image_embeddings.embeddings import ImageEmbeddings

__all__ = ["ImageDocumentEmbeddings", "QueryMode", "image_document_embeddings"]

QueryMode = Literal["text", "image"]
# What this view calls on the model it wraps.
_IMAGE_EMBEDDINGS_API = ("embed_image", "embed_query", "supports_text", "model_id")


class ImageDocumentEmbeddings(Embeddings):
    """Embeddings that read documents as image URIs and queries as text (or images).

    Key init args:
        image_embeddings: ImageEmbeddings
            The model doing the work.
        query: "text" | "image"
            How :meth:`embed_query` reads its argument: text for CLIP-type models
            (default), or an image URI for image-only models. ``query="text"`` on an
            image-only model raises :class:`~langchain_image_embeddings.errors.EncoderError`
            here, at construction (this creates the encoder object, without its weights).

    Instantiate:
        .. code-block:: python

            from langchain_core.vectorstores import InMemoryVectorStore
            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings

            view = ImageDocumentEmbeddings(ImageEmbeddings("open_clip:ViT-B-32"))
            store = InMemoryVectorStore(view)
            store.add_texts(["photos/cat.jpg", "photos/dog.jpg"])   # embedded as images
            store.similarity_search("a cat", k=1)                   # query embedded as text
    """

    def __init__(self, image_embeddings: ImageEmbeddings, *, query: QueryMode = "text") -> None:
        """Wrap ``image_embeddings``.

        Raises:
            TypeError: ``image_embeddings`` is not an ``ImageEmbeddings`` (e.g. a model spec).
            ValueError: ``query`` is neither ``"text"`` nor ``"image"``.
            EncoderError: ``query="text"`` with a model that has no text tower.
        """
        if not all(hasattr(type(image_embeddings), name) for name in _IMAGE_EMBEDDINGS_API):
            # checked on the type, so that no property runs; a model spec or a text-only
            # Embeddings would otherwise fail with a raw AttributeError, here or at the
            # first embed call
            raise TypeError(
                "ImageDocumentEmbeddings wraps an ImageEmbeddings, not "
                f"{type(image_embeddings).__name__} {image_embeddings!r:.80}: "
                "use ImageDocumentEmbeddings(ImageEmbeddings('timm:efficientnet_lite0'), ...)"
            )
        if query not in ("text", "image"):
            raise ValueError(f"query must be 'text' or 'image', not {query!r}")
        if query == "text" and not image_embeddings.supports_text:
            raise EncoderError(
                f"{image_embeddings.model_id} has no text tower, so it cannot embed text "
                "queries: use ImageDocumentEmbeddings(embeddings, query='image') to query by "
                "image URI, or a CLIP-type model (e.g. 'open_clip:ViT-B-32') for text queries"
            )
        self.image_embeddings = image_embeddings
        self.query: QueryMode = query

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.image_embeddings.model_id!r}, query={self.query!r})"

    @property
    def model_id(self) -> str:
        """The underlying model's spec."""
        return self.image_embeddings.model_id

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed each text as an image URI (path, ``file://``, ``http(s)://``, ``data:``).

        Raises:
            ImageLoadError: A URI cannot be read; the error names it and its index.
        """
        return self.image_embeddings.embed_image(list(texts))

    def embed_query(self, text: str) -> list[float]:
        """Embed a query: as text (``query="text"``) or as an image URI (``query="image"``)."""
        if self.query == "image":
            return self.image_embeddings.embed_image([text])[0]
        return self.image_embeddings.embed_query(text)

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed image URIs (the signature langchain-chroma and others call)."""
        return self.image_embeddings.embed_image(uris)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return await run_in_executor(None, self.embed_query, text)


def image_document_embeddings(
    embeddings: ImageEmbeddings, *, query: QueryMode = "text"
) -> ImageDocumentEmbeddings:
    """Return the image-document view of ``embeddings`` (see :class:`ImageDocumentEmbeddings`).

    Raises:
        EncoderError: ``query="text"`` with a model that has no text tower.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.document_embeddings import image_document_embeddings

            view = image_document_embeddings(ImageEmbeddings("timm:efficientnet_lite0"), query="image")
    """
    return ImageDocumentEmbeddings(embeddings, query=query)
