"""What the FAISS and Chroma image stores share: content ids, relevance, adding images."""

from __future__ import annotations

import json
import math
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings
from langchain_image_embeddings.errors import ImageLoadError, ModelMismatchError, StoreError

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.vectorstores import VectorStore
    from typing_extensions import Self

    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.images import ImageInput, ImageLoadOptions

_ID_NAMESPACE = uuid.UUID("6f1d3a8e-52a4-4c37-9a53-0c7b1f0e8d21")

#: Images embedded and written per step of :meth:`ImageVectorStore.add_images`.
WRITE_BATCH = 256

#: Vectors with an L2 norm at or below this are "zero" and never written.
MIN_NORM = 1e-6

#: The :attr:`ImageLoadError.code` of an image whose vector is NaN/inf or zero.
#: (``errors.IMAGE_ERROR_CODES`` has no vector-specific code yet; see docs/security.md.)
BAD_VECTOR_CODE = "invalid_vector"


def bad_vector_rows(vectors: np.ndarray) -> dict[int, str]:
    """Rows of a 2-D array that must never be written, with the reason (NaN/inf, zero norm)."""
    import numpy as np

    bad: dict[int, str] = {}
    finite = np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0.0), axis=1)
    for row in np.flatnonzero(~finite):
        bad[int(row)] = "the model produced a vector with NaN/inf values"
    for row in np.flatnonzero(finite & (norms <= MIN_NORM)):
        bad[int(row)] = "the model produced a zero-norm vector (no direction to compare)"
    return bad


def check_vectors(ids: Sequence[str], vectors: np.ndarray, dim: int) -> None:
    """Refuse a write of vectors that are not ``(len(ids), dim)``, finite and non-zero.

    Raises:
        StoreError: Naming the offending ids; nothing is written.
    """
    if vectors.ndim != 2 or vectors.shape != (len(ids), dim):
        raise StoreError(
            f"expected {len(ids)} vectors of dimension {dim}, got an array of shape "
            f"{tuple(vectors.shape)}; nothing was written"
        )
    bad = bad_vector_rows(vectors)
    if bad:
        named = ", ".join(f"{ids[r]} ({why})" for r, why in sorted(bad.items())[:5])
        raise StoreError(
            f"{len(bad)} vector(s) with NaN/inf values or zero norm: {named}; nothing was written"
        )


def content_id(sha256: str, model_id: str) -> str:
    """The id of an image's vector: a UUID derived from the file's hash and the model.

    The same bytes embedded by the same model always get the same id, so adding an image
    twice is a no-op; a changed file gets a new id.
    """
    return str(uuid.uuid5(_ID_NAMESPACE, f"{model_id}\n{sha256}"))


def relevance_from_cosine(cosine: float) -> float:
    """Map a cosine similarity in [-1, 1] to a relevance score in [0, 1] (same ranking)."""
    if not math.isfinite(cosine):
        return 0.0
    return min(1.0, max(0.0, (1.0 + cosine) / 2.0))


def model_record(embeddings: ImageEmbeddings) -> dict[str, Any]:
    """What a store records about the model that wrote it (spec, dim, fingerprint JSON)."""
    fingerprint = embeddings.encoder.fingerprint()
    return {
        "model": embeddings.model_id,
        "dim": int(embeddings.dim),
        "fingerprint": json.dumps(fingerprint, sort_keys=True, default=str),
    }


def check_model(stored: dict[str, Any], embeddings: ImageEmbeddings, where: str) -> None:
    """Raise :class:`ModelMismatchError` unless ``embeddings`` is the model ``stored`` names."""
    current = model_record(embeddings)
    for key in ("model", "dim", "fingerprint"):
        if key in stored and str(stored[key]) != str(current[key]):
            raise ModelMismatchError(
                f"{where} was written by model {stored.get('model')!r} ({stored.get('dim')}-d); "
                f"opening it with {current['model']!r} ({current['dim']}-d) would mix vector spaces "
                f"({key} differs). Open it with the same model, or index into a new store."
            )


@dataclass
class AddResult:
    """Outcome of :meth:`ImageVectorStore.add_images`.

    Attributes:
        added: Ids of vectors written (newly embedded images).
        skipped: Ids already in the store (same bytes, same model): nothing embedded.
        replaced: Ids removed because their ``source`` now holds different bytes.
        failures: Images that could not be read or embedded.

    Example:
        .. code-block:: python

            result = store.add_images(["cat.jpg", "dog.jpg"])
            print(len(result.added), len(result.skipped), [e.code for e in result.failures])
    """

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    failures: list[ImageLoadError] = field(default_factory=list)
    committed: bool = True


@dataclass
class PendingAdd:
    """Embedded but not yet written images (from :meth:`ImageVectorStore.prepare_add`).

    Attributes:
        ids: Content ids of the vectors to write.
        vectors: ``float32`` array, one finite, non-zero row per id.
        documents: The image documents, in the same order.
        stale: Ids of old vectors whose ``source`` now holds different bytes.
        result: Skipped ids and failures so far (``added``/``replaced`` filled on commit).

    Example:
        .. code-block:: python

            pending = store.prepare_add(["cat.jpg", "dog.jpg"])   # embedded, nothing written
            if not pending.result.failures:
                store.commit_add(pending)
    """

    ids: list[str]
    vectors: np.ndarray
    documents: list[Document]
    stale: list[str]
    result: AddResult


def to_image_documents(
    images: Iterable[Document | str | os.PathLike[str]],
    load_options: ImageLoadOptions | None = None,
    failures: list[ImageLoadError] | None = None,
) -> list[Document]:
    """Turn paths/URIs/documents into image documents with ``sha256`` metadata."""
    from langchain_image_embeddings.document_loaders import ImageURILoader

    loader = ImageURILoader([], load_options=load_options)
    docs: list[Document] = []
    for index, item in enumerate(images):
        if isinstance(item, Document):
            if "sha256" in item.metadata:
                docs.append(item)
                continue
            uri, extra = item.page_content, dict(item.metadata)
        else:
            uri, extra = os.fspath(item), {}
        try:
            meta = loader.describe(uri)
        except ImageLoadError as err:
            if failures is None:
                raise
            failures.append(err.with_index(index))
            continue
        docs.append(Document(page_content=meta["source"], metadata={**extra, **meta}))
    return docs


class ImageVectorStore(ABC):
    """Base of the image stores: a LangChain ``VectorStore`` plus image-aware writes.

    Subclasses hold a stock LangChain store (:attr:`vectorstore`) configured for
    normalised vectors (inner product / cosine) with relevance scores in ``[0, 1]``
    that rank like similarity, and implement a few storage primitives.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.vectorstores import open_store

            store = open_store("faiss:index", embeddings)     # or chroma:..., chroma+http://...
            store.add_images(["cat.jpg"])
            store.search_by_image("cat.jpg", k=1)             # [(Document, 1.0)]
            store.persist()
    """

    embeddings: ImageEmbeddings

    @property
    def document_embeddings(self) -> ImageDocumentEmbeddings:
        """The image-document view used by :attr:`vectorstore` (documents as images, queries as text)."""
        return ImageDocumentEmbeddings(self.embeddings)

    @property
    @abstractmethod
    def vectorstore(self) -> VectorStore:
        """The stock LangChain vector store (for ``as_retriever``, chains, ...)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors in the store."""

    @abstractmethod
    def records(self) -> dict[str, dict[str, Any]]:
        """Every stored id with its metadata."""

    @abstractmethod
    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` present in the store."""

    @abstractmethod
    def upsert_vectors(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        """Write vectors (one ``float32`` array) under ``ids``, replacing existing ones."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove the vectors with these ids (unknown ids are ignored)."""

    @abstractmethod
    def search_by_vector_with_cosine(
        self,
        vector: Sequence[float],
        k: int,
        *,
        filter: dict[str, Any] | None = None,
        fetch_k: int = 20,
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents with their cosine similarity, best first."""

    def persist(self) -> None:  # noqa: B027 - optional hook
        """Make writes durable (FAISS saves to its folder; Chroma writes through)."""

    def get_by_ids(self, ids: Sequence[str]) -> list[Document]:
        """Documents by id (missing ids are left out)."""
        return self.vectorstore.get_by_ids(ids)

    # -- writing and closing ------------------------------------------------------------
    def acquire_write_lock(self) -> None:  # noqa: B027 - optional hook
        """Become this store's only writer now (writes take the lock anyway, lazily).

        Raises:
            StoreLockedError: Another process is writing the store.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the writer lock, if held (unsaved FAISS changes are not saved)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------
    def _embed_chunk(
        self, chunk: Sequence[tuple[str, Document]], offset: int, result: AddResult
    ) -> tuple[list[str], np.ndarray, list[Document]]:
        """Embed a chunk; unreadable images and NaN/inf/zero vectors go to ``failures``."""
        import numpy as np

        embedded = self.embeddings.try_embed_images([d.page_content for _, d in chunk])
        failures = [err.with_index(offset + (err.index or 0)) for err in embedded.errors]
        vectors = np.ascontiguousarray(embedded.vectors, dtype=np.float32)
        bad = bad_vector_rows(vectors) if len(embedded.indices) else {}
        keep: list[int] = []
        for row, i in enumerate(embedded.indices):
            if row in bad:
                failures.append(
                    ImageLoadError(chunk[i][1].page_content, bad[row], BAD_VECTOR_CODE, offset + i)
                )
            else:
                keep.append(row)
        result.failures.extend(sorted(failures, key=lambda e: e.index or 0))
        if not keep:
            return [], np.zeros((0, int(self.embeddings.dim)), np.float32), []
        ids = [chunk[embedded.indices[r]][0] for r in keep]
        docs = [
            Document(
                id=chunk[embedded.indices[r]][0],
                page_content=chunk[embedded.indices[r]][1].page_content,
                metadata=chunk[embedded.indices[r]][1].metadata,
            )
            for r in keep
        ]
        return ids, vectors[keep], docs

    def _plan(
        self, images: Iterable[Document | str | os.PathLike[str]], replace_changed: bool
    ) -> tuple[AddResult, list[tuple[str, Document]], dict[str, str]]:
        result = AddResult()
        docs = to_image_documents(images, self.embeddings.load_options, result.failures)
        model_id = self.embeddings.model_id
        unique: dict[str, Document] = {}
        for doc in docs:
            unique.setdefault(content_id(doc.metadata["sha256"], model_id), doc)
        present = self.existing_ids(list(unique)) if unique else set()
        result.skipped = [i for i in unique if i in present]
        todo = [(i, d) for i, d in unique.items() if i not in present]
        old_by_source: dict[str, str] = {}
        if replace_changed and todo:
            old_by_source = {m.get("source", ""): i for i, m in self.records().items()}
        return result, todo, old_by_source

    @staticmethod
    def _stale(written: Sequence[Document], old_by_source: dict[str, str]) -> list[str]:
        return [
            old_by_source[d.metadata["source"]]
            for d in written
            if old_by_source.get(d.metadata["source"]) not in (None, d.id)
        ]

    def add_images(
        self,
        images: Iterable[Document | str | os.PathLike[str]],
        *,
        replace_changed: bool = True,
        all_or_nothing: bool = False,
    ) -> AddResult:
        """Embed and add images not already in the store.

        One unreadable image, or one whose vector is NaN/inf or zero, is reported in
        ``failures`` and never written; the others are written in batches.

        Args:
            images: Image documents (from the loaders), paths or URIs.
            replace_changed: Remove the old vector of a ``source`` whose bytes changed.
            all_or_nothing: Embed everything first and write nothing at all if any image
                failed (``result.committed`` is then false). Holds every new vector in
                memory until the write.

        Returns:
            What was added, skipped, replaced and what failed.

        Raises:
            StoreLockedError: Another process is writing the store.
        """
        if all_or_nothing:
            pending = self.prepare_add(images, replace_changed=replace_changed)
            if pending.result.failures:
                pending.result.committed = False
                return pending.result
            return self.commit_add(pending)
        result, todo, old_by_source = self._plan(images, replace_changed)
        for start in range(0, len(todo), WRITE_BATCH):
            ids, vectors, written = self._embed_chunk(
                todo[start : start + WRITE_BATCH], start, result
            )
            if not ids:
                continue
            self.upsert_vectors(ids, vectors, written)
            result.added.extend(ids)
            stale = self._stale(written, old_by_source)
            if stale:
                self.delete(stale)
                result.replaced.extend(stale)
        return result

    def prepare_add(
        self,
        images: Iterable[Document | str | os.PathLike[str]],
        *,
        replace_changed: bool = True,
    ) -> PendingAdd:
        """Embed the images :meth:`add_images` would add, without writing anything."""
        import numpy as np

        result, todo, old_by_source = self._plan(images, replace_changed)
        ids: list[str] = []
        parts: list[np.ndarray] = []
        docs: list[Document] = []
        for start in range(0, len(todo), WRITE_BATCH):
            chunk_ids, vectors, written = self._embed_chunk(
                todo[start : start + WRITE_BATCH], start, result
            )
            ids.extend(chunk_ids)
            parts.append(vectors)
            docs.extend(written)
        dim = int(self.embeddings.dim)
        matrix = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        return PendingAdd(ids, matrix, docs, self._stale(docs, old_by_source), result)

    def commit_add(self, pending: PendingAdd) -> AddResult:
        """Write what :meth:`prepare_add` embedded (in batches) and drop replaced vectors."""
        result = pending.result
        for start in range(0, len(pending.ids), WRITE_BATCH):
            stop = start + WRITE_BATCH
            self.upsert_vectors(
                pending.ids[start:stop], pending.vectors[start:stop], pending.documents[start:stop]
            )
            result.added.extend(pending.ids[start:stop])
        if pending.stale:
            self.delete(pending.stale)
            result.replaced.extend(pending.stale)
        result.committed = True
        return result

    # -- reads ---------------------------------------------------------------------------
    def search_by_vector(
        self,
        vector: Sequence[float],
        k: int = 4,
        *,
        filter: dict[str, Any] | None = None,
        fetch_k: int = 20,
        score_threshold: float | None = None,
    ) -> list[tuple[Document, float]]:
        """Nearest documents with relevance scores in ``[0, 1]`` (1 = same direction)."""
        if k <= 0 or len(self) == 0:
            return []
        hits = self.search_by_vector_with_cosine(vector, k, filter=filter, fetch_k=max(fetch_k, k))
        scored = [(doc, relevance_from_cosine(cos)) for doc, cos in hits]
        if score_threshold is not None:
            scored = [(d, s) for d, s in scored if s >= score_threshold]
        return scored[:k]

    def search_by_text(self, text: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """Text-to-image search (CLIP-type models)."""
        return self.search_by_vector(self.embeddings.embed_query(text), k, **kwargs)

    def search_by_image(
        self, image: ImageInput, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Image-to-image search; ``image`` is any supported input (path, URL, bytes, PIL ...)."""
        return self.search_by_vector(self.embeddings.embed_images([image])[0], k, **kwargs)

    def mmr_by_vector(
        self,
        vector: Sequence[float],
        k: int = 4,
        *,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
    ) -> list[Document]:
        """Maximal-marginal-relevance search (diverse results)."""
        if k <= 0 or len(self) == 0:
            return []
        docs: list[Document] = self.vectorstore.max_marginal_relevance_search_by_vector(
            list(vector), k=k, fetch_k=max(fetch_k, k), lambda_mult=lambda_mult, filter=filter
        )
        return docs
