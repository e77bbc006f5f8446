"""The "image document" view of :class:`~langchain_image_embeddings.ImageEmbeddings`.

LangChain vector stores call ``embed_documents(texts)`` on the ``page_content`` of the
documents they store and ``embed_query(text)`` on queries. For image documents the
``page_content`` is the image's URI, so this view embeds **documents as images** and
**queries as text** (CLIP-type models) or as image URIs, by one rule (:func:`resolve_query_mode`).
Any stock LangChain ``VectorStore`` and the incremental indexing API
(:func:`langchain_core.indexing.index`) then work on images unchanged.

The query rule, the same on every model, store and retriever of this package:
``query_mode="auto"`` (the default) searches a string that is an existing image file or an
image URI (``data:image/...``, an ``http(s)``/``file`` URL ending in an image suffix) **as
that image**, and any other string as text (CLIP text tower); a model without a text tower
reads every query as an image. ``"text"`` and ``"image"`` force one reading.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import TYPE_CHECKING, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor

from langchain_image_embeddings.errors import EncoderError, ImageLoadError
from langchain_image_embeddings.images import IMAGE_SUFFIXES, PYARROW_SCHEMES

if TYPE_CHECKING:
    from langchain_image_embeddings.embeddings import ImageEmbeddings

__all__ = [
    "QUERY_MODES",
    "ImageDocumentEmbeddings",
    "QueryMode",
    "image_document_embeddings",
    "is_image_address",
    "resolve_query_mode",
]

#: How a string query is read: ``"auto"`` (image path / URI as the image, else text),
#: ``"text"`` or ``"image"``.
QueryMode = Literal["auto", "text", "image"]
QUERY_MODES = ("auto", "text", "image")
#: A page of a document file (``report.pdf#page=3``), read by the package's image reader.
_PAGE = re.compile(r"#page=\d+$", re.IGNORECASE)
_MAX_ADDRESS = 4096
# What this view calls on the model it wraps.
_IMAGE_EMBEDDINGS_API = ("embed_image", "embed_query", "supports_text", "model_id")


def is_image_address(text: str) -> bool:
    """Whether a document's text names an image (to load) rather than being text (to embed).

    True for a ``data:`` URI, any ``http(s)``/``file``/object-storage URL, a PDF page address
    (``report.pdf#page=3``), a one-line string ending in an image suffix (whether or not the
    file still exists: a deleted image is an error, never embedded as text) and an existing
    file. Everything else (prose, captions, ``"dummy_text"``) is text. At most one ``stat``.

    Example:
        >>> is_image_address("photos/cat.jpg"), is_image_address("a cat on a sofa")
        (True, False)
    """
    if text[:5].lower() == "data:":
        return True
    if not text or len(text) > _MAX_ADDRESS or "\n" in text:
        return False
    candidate = text.strip()
    lower = candidate.lower()
    scheme = urllib.parse.urlsplit(lower).scheme if "://" in lower else ""
    if scheme in ("http", "https", "file") or scheme in PYARROW_SCHEMES:
        return True
    if lower.endswith(IMAGE_SUFFIXES) or _PAGE.search(lower):
        return True
    try:
        return os.path.isfile(os.path.expanduser(candidate))
    except (OSError, ValueError):  # e.g. an embedded NUL byte
        return False


def resolve_query_mode(mode: QueryMode, query: object, *, supports_text: bool) -> str:
    """Read one query by the package's query rule: ``"text"`` or ``"image"``.

    ``"auto"``: a non-string input (bytes, PIL image, array) is an image; a string is an
    image when it is an existing image file or an image URI
    (:func:`~langchain_image_embeddings.embeddings.looks_like_image_uri`), else text; a
    model without a text tower reads every query as an image.

    Raises:
        ValueError: ``mode`` is not ``"auto"``, ``"text"`` or ``"image"``.

    Example:
        >>> resolve_query_mode("auto", "a red rocket", supports_text=True)
        'text'
        >>> resolve_query_mode("auto", "data:image/png;base64,AA", supports_text=True)
        'image'
    """
    if mode not in QUERY_MODES:
        raise ValueError(f"query_mode {mode!r}: expected 'auto', 'text' or 'image'")
    if mode != "auto":
        return mode
    if not isinstance(query, str) or not supports_text:
        return "image"
    from langchain_image_embeddings.embeddings import looks_like_image_uri

    return "image" if looks_like_image_uri(query) else "text"


class ImageDocumentEmbeddings(Embeddings):
    """Embeddings that read documents as image URIs and queries as text (or images).

    Key init args:
        image_embeddings: ImageEmbeddings
            The model doing the work.
        query: "auto" | "text" | "image"
            How :meth:`embed_query` reads its argument (:func:`resolve_query_mode`):
            ``"auto"`` (default) an existing image file or image URI as the image and
            anything else as text; ``"text"`` always text; ``"image"`` always an image URI.
            ``query="text"`` on an image-only model raises
            :class:`~langchain_image_embeddings.errors.EncoderError` here, at construction
            (this creates the encoder object, without its weights).

    Documents that are text:
        :meth:`embed_documents` embeds each image address (:func:`is_image_address`) as the
        image and any other text through the CLIP text tower, in the same space: captions,
        OCR text or alt text stored beside images are searchable with them, and the
        dimension probes some stores run at construction (langchain-qdrant embeds
        ``["dummy_text"]`` to size its collection) get a vector of the right length. A model
        without a text tower returns a zero vector for such a text (no direction: it ranks
        nowhere; this package's own stores refuse it), so the probe works there too.

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

    def __init__(self, image_embeddings: ImageEmbeddings, *, query: QueryMode = "auto") -> None:
        """Wrap ``image_embeddings``.

        Raises:
            TypeError: ``image_embeddings`` is not an ``ImageEmbeddings`` (e.g. a model spec).
            ValueError: ``query`` is not ``"auto"``, ``"text"`` or ``"image"``.
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
        if query not in QUERY_MODES:
            raise ValueError(f"query must be 'auto', 'text' or 'image', not {query!r}")
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
        """Embed image addresses as images and other texts as text (see the class notes).

        Raises:
            ImageLoadError: An image address cannot be read; the error names it and its index.
        """
        texts = list(texts)
        kinds = [is_image_address(t) for t in texts]
        if all(kinds):
            return self.image_embeddings.embed_image(texts)
        out: list[list[float]] = [[] for _ in texts]
        images = [i for i, is_image in enumerate(kinds) if is_image]
        if images:
            try:
                vectors = self.image_embeddings.embed_image([texts[i] for i in images])
            except ImageLoadError as err:  # name the caller's index, not the sub-batch's
                if err.index is None:
                    raise
                raise err.with_index(images[err.index]) from err
            for i, vector in zip(images, vectors, strict=True):
                out[i] = vector
        words = [i for i, is_image in enumerate(kinds) if not is_image]
        if self.image_embeddings.supports_text:
            for i, vector in zip(
                words, self.image_embeddings.embed_documents([texts[i] for i in words]), strict=True
            ):
                out[i] = vector
        else:
            zero = [0.0] * int(self.image_embeddings.dim)
            for i in words:
                out[i] = list(zero)
        return out

    def embed_query(self, text: str) -> list[float]:
        """Embed a query by the query rule (``query``; see :func:`resolve_query_mode`).

        Raises:
            ImageLoadError: The query is read as an image and cannot be.
        """
        mode = resolve_query_mode(
            self.query, text, supports_text=self.image_embeddings.supports_text
        )
        if mode == "image":
            return self.image_embeddings.embed_image([text.strip()])[0]
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
    embeddings: ImageEmbeddings, *, query: QueryMode = "auto"
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
