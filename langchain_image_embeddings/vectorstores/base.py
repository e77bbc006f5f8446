"""What the image stores share: the LangChain ``VectorStore`` contract and image-aware writes.

An image store is a :class:`langchain_core.vectorstores.VectorStore` over normalised
vectors (cosine), whose scores are relevance in ``[0, 1]`` everywhere
(``similarity_search_with_score``, ``..._with_relevance_scores``, the retrievers). It
accepts **any** ``Embeddings``: with a text model it is an ordinary LangChain store
(``add_texts`` embeds texts, random ids unless given). With an image model
(:class:`~langchain_image_embeddings.ImageEmbeddings`) a document's ``page_content`` is
the image's URI, as in :class:`~langchain_image_embeddings.document_embeddings.ImageDocumentEmbeddings`:
documents are embedded as images under content ids (file hash + model), the model's
fingerprint is recorded and checked, text queries go through the CLIP text tower and
``similarity_search_by_image`` takes any image input.

Backends implement a few storage primitives (``_write``, ``_delete_ids``, ``_search``, ...);
everything else lives once, in a chain of classes with one concern each:
:class:`~langchain_image_embeddings.vectorstores.store_core.StoreCore` (the model, the
primitives, the writer lock and checked vector writes),
:class:`~langchain_image_embeddings.vectorstores.ingest.ImageIngest` (image ingest) and,
here, :class:`ImageVectorStore` (the LangChain contract: ``add_texts`` and the searches).
Every name this module exported before the split is still importable from it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings.errors import EncoderError, StoreError
from langchain_image_embeddings.vectorstores.ingest import ImageIngest, ImageItem
from langchain_image_embeddings.vectorstores.records import (
    BAD_VECTOR_CODE,
    MIN_NORM,
    SOURCES_KEY,
    WRITE_BATCH,
    AddResult,
    PendingAdd,
    bad_vector_rows,
    check_model,
    check_vectors,
    content_id,
    image_embeddings_of,
    model_record,
    record_paths,
    relevance_from_cosine,
    to_image_documents,
    unit_rows,
    with_paths,
)
from langchain_image_embeddings.vectorstores.store_core import StoreCore

if TYPE_CHECKING:
    import numpy as np

    from langchain_image_embeddings.images._load import ImageInput

__all__ = [
    "BAD_VECTOR_CODE",
    "MIN_NORM",
    "SOURCES_KEY",
    "WRITE_BATCH",
    "AddResult",
    "ImageIngest",
    "ImageItem",
    "ImageVectorStore",
    "PendingAdd",
    "StoreCore",
    "bad_vector_rows",
    "check_model",
    "check_vectors",
    "content_id",
    "image_embeddings_of",
    "model_record",
    "record_paths",
    "relevance_from_cosine",
    "to_image_documents",
    "unit_rows",
    "with_paths",
]


class ImageVectorStore(ImageIngest):
    """Base of the image stores: a LangChain ``VectorStore`` with image-aware writes.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore(ImageEmbeddings("timm:efficientnet_lite0"), "index")
            store.add_documents(ImageDirectoryLoader("photos").load())   # embedded as images
            store.similarity_search_by_image("query.jpg", k=1)          # [Document]
            store.as_retriever(search_kwargs={"k": 3})                  # any LangChain chain
    """

    # -- LangChain writes (image URIs go to ImageIngest) ---------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert texts; with an image model the texts are image URIs.

        Ids default to content ids (image model) or random UUIDs (text model); a given id
        replaces the record under it. With an image model nothing is written if any image
        cannot be read (the first failure is raised, naming the input and its index).

        Raises:
            ImageLoadError: An image URI that cannot be read or embedded.
        """
        import numpy as np

        texts = list(texts)
        metas = [dict(m or {}) for m in metadatas] if metadatas else [{} for _ in texts]
        given: list[str | None] = list(ids) if ids else [None] * len(texts)
        if len(metas) != len(texts) or len(given) != len(texts):
            raise ValueError("texts, metadatas and ids must have the same length")
        if not texts:
            return []
        if self.embeds_images:
            return self._add_image_uris(texts, metas, given)
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        final = [i or str(uuid.uuid4()) for i in given]
        unique = {i: row for row, i in enumerate(final)}  # the last of a repeated id wins
        rows = list(unique.values())
        docs = [Document(id=final[r], page_content=texts[r], metadata=metas[r]) for r in rows]
        self.upsert_vectors([final[r] for r in rows], vectors[rows], docs)
        return final

    # -- searches ------------------------------------------------------------------------
    def text_query_vector(self, query: str) -> list[float]:
        """The vector a text query is searched with (CLIP text tower for image models).

        An image-only model (no text tower) reads an image URI query (an existing image
        file, ``data:image/...``, an image URL) as the image: stock retrievers
        (``as_retriever()``, ``EnsembleRetriever`` ...) then search image-to-image.

        Raises:
            EncoderError: An image model without a text tower, and a query that is not an
                image URI.
        """
        image = self._image_embeddings
        if image is not None and not image.supports_text:
            from langchain_image_embeddings.embeddings import looks_like_image_uri

            if looks_like_image_uri(query):
                return self.image_query_vector(query.strip())
            raise EncoderError(
                f"{image.model_id} has no text tower, so it cannot embed the text query "
                f"{query[:60]!r}: search by image (similarity_search_by_image) or use a CLIP-type "
                "model"
            )
        return list(self._embedding.embed_query(query))

    def image_query_vector(self, image: ImageInput) -> list[float]:
        """The vector a query image (any supported input) is searched with."""
        return list(self.image_embeddings.embed_images([image])[0])

    def _query_unit(self, embedding: Sequence[float]) -> np.ndarray:
        """The query as a unit ``float32`` vector.

        Raises:
            StoreError: Not one vector of the store's dimension, NaN/inf values or zero norm
                (such a query would rank the documents arbitrarily).
        """
        import numpy as np

        try:
            query = np.asarray(embedding, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the query is not a vector of numbers: {exc}") from exc
        dim = self.dim
        if query.ndim != 1 or (dim is not None and len(query) != dim):
            raise StoreError(
                f"the query vector has shape {query.shape} (dimension {query.shape[-1]}), the "
                f"store holds vectors of dimension {dim}: was it made by another model?"
            )
        if not np.isfinite(query).all():
            raise StoreError("the query vector has NaN/inf values: it cannot rank documents")
        if float(np.linalg.norm(query)) <= MIN_NORM:
            raise StoreError("the query vector is zero (no direction): it cannot rank documents")
        return unit_rows(query.reshape(1, -1)).reshape(-1)

    def similarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Any = None,
        *,
        fetch_k: int = 20,
        score_threshold: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Nearest documents with relevance scores in ``[0, 1]`` (1 = same direction).

        Args:
            embedding: The query vector (normalised here).
            k: Number of documents.
            filter: Metadata filter (``{"format": "PNG"}``; backend operators allowed).
            fetch_k: Candidates fetched before filtering (FAISS).
            score_threshold: Drop hits whose relevance is below this.
        """
        if k <= 0 or self._nothing_to_search():
            return []
        query = self._query_unit(embedding)
        hits = self._search(query, k, filter, max(fetch_k, k))
        scored = [(doc, relevance_from_cosine(cos)) for doc, cos in hits]
        if score_threshold is not None:
            scored = [(d, s) for d, s in scored if s >= score_threshold]
        return scored[:k]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """Nearest documents to a vector."""
        hits = self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        return [doc for doc, _ in hits]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Text query with relevance scores in ``[0, 1]``.

        Raises:
            EncoderError: An image model without a text tower.
        """
        return self.similarity_search_with_score_by_vector(
            self.text_query_vector(query), k, filter, **kwargs
        )

    def similarity_search(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """Documents nearest to a text query (CLIP text tower for image models)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_image_with_relevance_score(
        self, image: ImageInput | None = None, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Image query (path, URL, ``data:`` URI, bytes, PIL image, array) with relevance scores.

        ``uri=`` is accepted for ``image=`` (langchain-chroma's name).
        """
        if image is None:
            image = kwargs.pop("uri", None)
        if image is None:
            raise TypeError("give the query image (image=... or uri=...)")
        return self.similarity_search_with_score_by_vector(
            self.image_query_vector(image), k, filter, **kwargs
        )

    def similarity_search_by_image(
        self, image: ImageInput | None = None, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """Documents nearest to a query image (any supported image input)."""
        hits = self.similarity_search_by_image_with_relevance_score(image, k, filter, **kwargs)
        return [doc for doc, _ in hits]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Maximal-marginal-relevance search: relevant but diverse documents."""
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        if k <= 0 or self._nothing_to_search():
            return []
        query = self._query_unit(embedding)
        with self._mutex:  # the hits' vectors, before another thread deletes them
            hits = self._search(query, max(fetch_k, k), filter, max(fetch_k, k))
            if not hits:
                return []
            vectors = self._vectors([str(d.id) for d, _ in hits])
        chosen = maximal_marginal_relevance(query, list(vectors), lambda_mult=lambda_mult, k=k)
        return [hits[i][0] for i in chosen]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR search for a text query."""
        return self.max_marginal_relevance_search_by_vector(
            self.text_query_vector(query), k, fetch_k, lambda_mult, filter, **kwargs
        )

    def max_marginal_relevance_search_by_image(
        self,
        image: ImageInput,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR search for a query image."""
        return self.max_marginal_relevance_search_by_vector(
            self.image_query_vector(image), k, fetch_k, lambda_mult, filter, **kwargs
        )

    # -- short names (the package's own API before the stores were VectorStores) ----------
    def search_by_vector(
        self, vector: Sequence[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score_by_vector`."""
        return self.similarity_search_with_score_by_vector(vector, k, **kwargs)

    def search_by_text(self, text: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score` (text-to-image with CLIP models)."""
        return self.similarity_search_with_score(text, k, **kwargs)

    def search_by_image(
        self, image: ImageInput, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_by_image_with_relevance_score`."""
        return self.similarity_search_by_image_with_relevance_score(image, k, **kwargs)

    def mmr_by_vector(self, vector: Sequence[float], k: int = 4, **kwargs: Any) -> list[Document]:
        """:meth:`max_marginal_relevance_search_by_vector`."""
        return self.max_marginal_relevance_search_by_vector(list(vector), k, **kwargs)

    # -- bulk load (issue 11; the logic lives in scale/load.py) ---------------------------
    def add_from_parquet(
        self, path: str | os.PathLike[str], *, batch_size: int = 4096, replace_changed: bool = False
    ) -> AddResult:
        """Add the vectors of Parquet shards (``imgemb embed-dataset``) without re-embedding.

        Same records as :meth:`add_images`; a shard of another model raises
        ``ModelMismatchError``; rerunning adds nothing. See :func:`~langchain_image_embeddings.scale.load.load_shards`.
        """
        from langchain_image_embeddings.scale.load import load_shards

        return load_shards(
            self, path, batch_size=batch_size, replace_changed=replace_changed
        ).result
