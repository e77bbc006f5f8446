"""The LangChain contract every page store shares, over two hooks of its storage.

A page store keeps page images as patch-vector matrices and answers queries with MaxSim.
:class:`PageStoreBase` holds what does not depend on where the vectors live: page images
embedded through the late-interaction model with content ids (``add_images``, ``add_texts``),
text and image queries (``similarity_search*``, ``similarity_search_by_image*``), retrievers,
scores in ``[0, 1]``. A store implements three things: :meth:`PageStoreBase.add_vectors`,
:meth:`PageStoreBase.search_by_tokens` and :meth:`PageStoreBase.existing_pages`.
:class:`~langchain_image_embeddings.vectorstores.multivector.MultiVectorImageStore` (FAISS and
files) and :class:`~langchain_image_embeddings.vectorstores.multivector.MilvusMultiVectorStore`
are the two.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from langchain_image_embeddings.errors import ImageLoadError, StoreError
from langchain_image_embeddings.images import (
    ImageLoadOptions,
    ImageSource,
    load_image,
    read_image_source,
)
from langchain_image_embeddings.vectorstores._records import AddResult, content_id

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from typing_extensions import Self

    from langchain_image_embeddings.images import ImageInput
    from langchain_image_embeddings.vectorstores.multivector._embedder import (
        MultiVectorEmbedder,
    )

__all__ = ["EMBED_BATCH", "Filter", "PageStoreBase", "page_filter", "unit_page"]

#: A filter: ``{"key": value}`` (equality; a list value means "one of") or a callable on metadata.
Filter = dict[str, Any] | Callable[[dict[str, Any]], bool] | None

#: Page images embedded per model call in ``add_images``.
EMBED_BATCH = 8


def unit_page(id_: str, page: np.ndarray, dim: int | None) -> np.ndarray:
    """A page (or query) as ``float32`` unit rows, checked.

    Args:
        id_: Named in errors.
        page: ``(patches, dim)`` numbers.
        dim: The store's dimension (``None``: any).

    Raises:
        StoreError: Not a 2-D matrix, empty, of another dimension, NaN/inf or zero rows.

    Example:
        .. code-block:: python

            import numpy as np
            from langchain_image_embeddings.vectorstores.multivector import unit_page

            unit_page("p", np.array([[3.0, 4.0]]), 2)   # array([[0.6, 0.8]], dtype=float32)
    """
    try:
        matrix = np.asarray(page, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"page {id_!r}: not a matrix of numbers: {exc}") from exc
    if matrix.ndim != 2 or not len(matrix):
        raise StoreError(
            f"page {id_!r}: expected (patches, dim) with patches >= 1, got shape {matrix.shape}"
        )
    if dim is not None and matrix.shape[1] != dim:
        raise StoreError(
            f"page {id_!r}: dimension {matrix.shape[1]}, the store holds "
            f"{dim}: was it made by another model?"
        )
    if not np.isfinite(matrix).all():
        raise StoreError(f"page {id_!r}: NaN/inf values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms <= 1e-12).any():
        raise StoreError(f"page {id_!r}: zero patch vectors (row {int(np.argmin(norms))})")
    unit: np.ndarray = matrix / norms
    return unit


def page_filter(
    filter: dict[str, Any] | Callable[[dict[str, Any]], bool],
) -> Callable[[dict[str, Any]], bool]:
    """A filter as a test on a page's metadata (a list value in a dict means "one of").

    Example:
        .. code-block:: python

            from langchain_image_embeddings.vectorstores.multivector import page_filter

            page_filter({"page": [1, 2]})({"page": 2})   # True
    """
    if callable(filter):
        return filter
    wanted = dict(filter)

    def keep(metadata: dict[str, Any]) -> bool:
        for key, value in wanted.items():
            got = metadata.get(key)
            if isinstance(value, list):
                if got not in value:
                    return False
            elif got != value:
                return False
        return True

    return keep


class PageStoreBase(VectorStore):
    """A LangChain ``VectorStore`` of page images kept as patch vectors (see the module).

    Subclasses set ``embedder`` and ``load_options`` and implement :meth:`add_vectors`,
    :meth:`search_by_tokens` and :meth:`existing_pages`.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.vectorstores import MultiVectorImageStore

            store = MultiVectorImageStore(None, patch_index=None)   # a PageStoreBase
            store.similarity_search_with_relevance_scores   # LangChain's, scores in [0, 1]
    """

    embedder: MultiVectorEmbedder | None
    load_options: ImageLoadOptions | None

    # -- what a storage implements -------------------------------------------------------
    @abstractmethod
    def add_vectors(
        self, ids: Sequence[str], pages: Sequence[np.ndarray], documents: Sequence[Document]
    ) -> None:
        """Upsert pages given as patch-vector matrices (one ``(patches, dim)`` per id)."""

    @abstractmethod
    def search_by_tokens(
        self, query: np.ndarray, k: int = 4, filter: Filter = None
    ) -> list[tuple[Document, float]]:
        """Pages best for a query given as token vectors, with relevance in ``[0, 1]``."""

    @abstractmethod
    def existing_pages(self, ids: Sequence[str]) -> set[str]:
        """Which of these page ids the store holds."""

    # -- the LangChain face --------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings | None:
        """``None``: the model is multi-vector, not a LangChain ``Embeddings``."""
        return None

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda score: score  # every score is already relevance in [0, 1]

    def _require_embedder(self) -> MultiVectorEmbedder:
        if self.embedder is None:
            raise StoreError("this store was opened without a model: it can search by tokens only")
        return self.embedder

    def add_images(self, images: Iterable[str | ImageSource | Document]) -> AddResult:
        """Embed and add page images not already in the store (by content id).

        Args:
            images: Paths or URIs (any input the image reader takes: a PDF page address
                once PDFs are read), :class:`ImageSource` objects, or image documents
                (``page_content`` is the URI; their metadata is kept).

        Returns:
            Ids added, ids skipped (same bytes, same model), and per-input failures (an
            unreadable image is reported with its index and code; the others are added).
        """
        embedder = self._require_embedder()
        result = AddResult()
        reads: list[tuple[str, ImageSource, dict[str, Any]]] = []
        for index, item in enumerate(images):
            meta: dict[str, Any] = {}
            source: str | ImageSource
            if isinstance(item, Document):
                source, meta = item.page_content, dict(item.metadata)
            else:
                source = item
            try:
                read = (
                    source
                    if isinstance(source, ImageSource)
                    else read_image_source(source, self.load_options)
                )
            except ImageLoadError as exc:
                result.failures.append(exc.with_index(index))
                continue
            reads.append((content_id(read.sha256, embedder.model_id), read, meta))
        # One look-up for the whole call: a server store answers it in one round trip.
        present = self.existing_pages(list(dict.fromkeys(i for i, _, _ in reads)))
        todo: list[tuple[str, ImageSource, dict[str, Any]]] = []
        seen: set[str] = set()
        for id_, read, meta in reads:
            result.input_ids.append(id_)
            if id_ in seen or id_ in present:
                result.skipped.append(id_)
                continue
            seen.add(id_)
            todo.append((id_, read, {**meta, **read.metadata}))
        for start in range(0, len(todo), EMBED_BATCH):
            batch = todo[start : start + EMBED_BATCH]
            pictures = []
            kept = []
            for id_, read, meta in batch:
                try:
                    pictures.append(load_image(read, self.load_options))
                    kept.append((id_, read, meta))
                except ImageLoadError as exc:
                    result.failures.append(exc)
            if not kept:
                continue
            pages = embedder.embed_pages(pictures)
            docs = [Document(page_content=r.source, metadata=m) for _, r, m in kept]
            self.add_vectors([i for i, _, _ in kept], pages, docs)
            result.added.extend(i for i, _, _ in kept)
        return result

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add page images by URI (LangChain's ``add_texts``: the texts are image URIs).

        All or nothing: the first unreadable image is raised and nothing is written.

        Raises:
            ImageLoadError: An image that cannot be read (naming it and its index).
        """
        texts = list(texts)
        metas = metadatas or [{} for _ in texts]
        docs = [
            Document(page_content=t, metadata=dict(m)) for t, m in zip(texts, metas, strict=True)
        ]
        if ids:
            embedder = self._require_embedder()
            pictures = [load_image(t, self.load_options, index=n) for n, t in enumerate(texts)]
            self.add_vectors(ids, embedder.embed_pages(pictures), docs)
            return list(ids)
        sources = []
        for n, doc in enumerate(docs):
            try:
                sources.append(read_image_source(doc.page_content, self.load_options))
            except ImageLoadError as exc:
                raise exc.with_index(n) from None
        with_meta = [
            Document(page_content=s.source, metadata={**d.metadata, **s.metadata})
            for s, d in zip(sources, docs, strict=True)
        ]
        result = self.add_images(
            [Document(page_content=d.page_content, metadata=d.metadata) for d in with_meta]
        )
        if result.failures:
            raise result.failures[0]
        return result.input_ids

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Not supported: a page store needs a ``MultiVectorEmbedder``."""
        raise NotImplementedError(
            f"build {cls.__name__}(embedder, ...) and call add_images: its model is a "
            "late-interaction encoder, not a LangChain Embeddings"
        )

    # -- searches ------------------------------------------------------------------------
    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Pages best for a text query, with relevance in ``[0, 1]``."""
        return self.search_by_tokens(self._require_embedder().embed_query(query), k, filter)

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """Pages best for a text query (late interaction: candidates, then MaxSim)."""
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_image_with_relevance_score(
        self, image: ImageInput, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Pages best for a query image (any image input), with relevance in ``[0, 1]``.

        The image is embedded as a page; its patch vectors are the query's tokens.
        """
        picture = load_image(image, self.load_options)
        tokens = self._require_embedder().embed_pages([picture])[0]
        return self.search_by_tokens(tokens, k, filter)

    def similarity_search_by_image(
        self, image: ImageInput, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """Pages best for a query image (see
        :meth:`similarity_search_by_image_with_relevance_score`)."""
        hits = self.similarity_search_by_image_with_relevance_score(image, k, filter)
        return [d for d, _ in hits]
