"""The model, the backend primitives and the writer lock of every image store.

:class:`StoreCore` is the root of the image stores' class chain: it holds the model
(any LangChain ``Embeddings``; the image behaviour when it embeds images), declares the few
storage primitives each backend implements (``_write``, ``_delete_ids``, ``_search``, ...),
owns the store's life cycle (the writer lock on its folder, ``close``, ``with``) and the
checked vector writes every other write goes through (``upsert_vectors``, ``delete``).
Image ingest is :mod:`~langchain_image_embeddings.vectorstores.ingest`; the LangChain
``VectorStore`` contract (``add_texts``, the searches) is
:mod:`~langchain_image_embeddings.vectorstores.base`.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.vectorstores import VectorStore

from langchain_image_embeddings._locks import StoreLock
from langchain_image_embeddings.errors import EncoderError
from langchain_image_embeddings.vectorstores.records import (
    check_model,
    check_vectors,
    image_embeddings_of,
    model_record,
    unit_rows,
)

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from typing_extensions import Self

    from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings
    from langchain_image_embeddings.embeddings import ImageEmbeddings

__all__ = ["StoreCore"]


class StoreCore(VectorStore, ABC):
    """Model, backend primitives and writer lock of an image store (a base class: use
    :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore` and its siblings).

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            with FAISSImageStore(ImageEmbeddings("timm:efficientnet_lite0"), "index") as store:
                store.acquire_write_lock()      # StoreLockedError if another process writes
                store.embeds_images, store.dim  # (True, 1280)
    """

    def __init__(self, embeddings: Embeddings) -> None:
        self._embedding = embeddings
        self._image_embeddings = image_embeddings_of(embeddings)
        self._writer_lock: StoreLock | None = None
        self._lock_release: weakref.finalize[Any, Any] | None = None
        # Threads share a store (async variants run in executor threads, a web server's
        # workers): backends that keep state in this process serialise on it.
        self._mutex = threading.RLock()

    # -- the model -----------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        """The model given at construction (any LangChain ``Embeddings``)."""
        return self._embedding

    @property
    def embeds_images(self) -> bool:
        """Whether the model embeds images (documents are then image URIs)."""
        return self._image_embeddings is not None

    @property
    def image_embeddings(self) -> ImageEmbeddings:
        """The image model.

        Raises:
            EncoderError: The store was built with a text-only ``Embeddings``.
        """
        if self._image_embeddings is None:
            raise EncoderError(
                f"this store embeds with {type(self._embedding).__name__}, which cannot embed "
                "images: build it with ImageEmbeddings for image documents and image queries"
            )
        return self._image_embeddings

    @property
    def document_embeddings(self) -> ImageDocumentEmbeddings:
        """The image-document view of the model, for stock LangChain stores."""
        from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings

        image = self.image_embeddings
        return ImageDocumentEmbeddings(image, query="text" if image.supports_text else "image")

    @property
    def vectorstore(self) -> VectorStore:
        """This store (kept for code written when the stores wrapped a stock one)."""
        return self

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Every score this store returns is already relevance in [0, 1].
        return lambda score: score

    # -- backend primitives --------------------------------------------------------------
    @property
    @abstractmethod
    def dim(self) -> int | None:
        """Dimension of the stored vectors (``None`` until known)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors in the store."""

    def _nothing_to_search(self) -> bool:
        """Whether a search can return nothing without asking the backend (an empty store).

        A backend whose count is a round trip (Milvus) overrides this with something cheaper:
        every search asks it first.
        """
        return len(self) == 0

    @abstractmethod
    def records(self) -> dict[str, dict[str, Any]]:
        """Every stored id with its metadata."""

    @abstractmethod
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents by id (missing ids are left out)."""

    @abstractmethod
    def _write(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        """Upsert checked unit vectors; the writer lock is held."""

    @abstractmethod
    def _delete_ids(self, ids: Sequence[str]) -> None:
        """Remove these ids (unknown ones ignored); the writer lock is held."""

    @abstractmethod
    def _update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Replace the metadata of existing records, keeping their vectors."""

    @abstractmethod
    def _search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents to a unit vector with their cosine, best first."""

    @abstractmethod
    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored (unit) vectors of these ids, in order."""

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` present in the store."""
        return {d.id for d in self.get_by_ids(list(ids)) if d.id is not None}

    def persist(self) -> None:
        """Make writes durable (FAISS saves to its folder; Chroma writes through)."""

    # -- one writer per folder (the lock lives here once; stores say which folder) --------
    def _lock_dir(self) -> Path | None:
        """The folder whose writer lock writes take; ``None``: no lock (a server store)."""
        return None

    def _on_locked(self) -> None:
        """Checks once the lock is held (FAISS: nobody saved over the loaded generation)."""

    def _release(self) -> None:
        """What :meth:`close` frees besides the lock (Milvus: a connection it opened)."""

    def acquire_write_lock(self) -> None:
        """Become this store's only writer now (writes take the lock anyway, lazily).

        A no-op for stores without a folder (servers serialise writes themselves). The lock
        is released by :meth:`close`, when the store is garbage-collected, or when the
        process ends (``kill -9`` included).

        Raises:
            StoreLockedError: Another process is writing the store.
            StoreError: A check made once the lock is held failed (then it is released).
        """
        folder = self._lock_dir()
        if folder is None or (self._writer_lock is not None and self._writer_lock.held):
            return
        lock = StoreLock(folder)
        lock.acquire()
        self._writer_lock = lock
        self._lock_release = weakref.finalize(self, lock.release)
        try:
            self._on_locked()
        except BaseException:
            self._release_lock()
            raise

    def _release_lock(self) -> None:
        if self._lock_release is not None:
            self._lock_release()
        self._lock_release = None
        self._writer_lock = None

    def close(self) -> None:
        """Release the writer lock, if held, and what the store opened (a FAISS store with
        a folder saves its unsaved changes first)."""
        self._release_lock()
        self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- vector writes -------------------------------------------------------------------
    def upsert_vectors(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        """Write vectors (one row per id) under ``ids``, replacing existing ones.

        Rows are normalised to unit length (the stores compare by cosine).

        Raises:
            StoreError: A wrong shape, or NaN/inf/zero rows (naming the ids); nothing written.
        """
        import numpy as np

        if len(ids) != len(vectors) or len(ids) != len(documents):
            raise ValueError("ids, vectors and documents must have the same length")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in one write")
        if not len(ids):
            return
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        check_vectors(ids, matrix, self.dim)
        self.acquire_write_lock()
        self._write(list(ids), unit_rows(matrix), list(documents))

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete records by id (unknown ids are ignored); ``ids=None`` deletes every record.

        Returns:
            True.
        """
        if ids is None:
            ids = list(self.records())
        if ids:
            self.acquire_write_lock()
            self._delete_ids(list(ids))
        return True

    def _check_model(self, stored: dict[str, Any], where: str) -> None:
        check_model(stored, self._embedding, where)

    def _model_record(self) -> dict[str, Any]:
        record = model_record(self._embedding)
        if "dim" not in record and self.dim is not None:
            record["dim"] = self.dim
        return record
