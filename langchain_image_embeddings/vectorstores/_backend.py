"""What an image store asks of its storage: the backend protocol.

:class:`~langchain_image_embeddings.vectorstores.base.ImageVectorStore` implements the
LangChain contract, content ids, duplicates, image ingest, the model check, the writer
lock and vector validation once, over a backend object with the handful of storage
methods below. Each backend is one class in its package: ``faiss/`` (a folder of
memory-mapped segments), ``chroma/`` (a Chroma collection), ``milvus/`` (a Milvus
collection). A new backend implements this protocol and gets a thin store class of its own.

The store calls a backend with checked input only: vectors are finite, non-zero unit rows
of the store's dimension, ids are unique within one write, and writes happen while the
store holds the writer lock of :meth:`StoreBackend.lock_dir` (if any).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import threading
    from pathlib import Path

    import numpy as np
    from langchain_core.documents import Document


class StoreBackend(Protocol):
    """The storage under an image store (see the module docs).

    Example:
        .. code-block:: python

            store = FAISSImageStore(embeddings)        # builds a FAISSBackend
            store.backend.count(), store.backend.dim   # (0, 1280)
    """

    #: Serialises threads that share a store (async variants run in executor threads, a
    #: web server's workers); a backend that keeps state in this process takes it itself.
    mutex: threading.RLock

    @property
    def where(self) -> str:
        """The storage, in messages (``"FAISS store index"``, ``"Chroma collection 'images'"``)."""
        ...

    @property
    def dim(self) -> int | None:
        """Dimension of the stored vectors (``None`` until known)."""
        ...

    # -- the model record ------------------------------------------------------------------
    def read_model_record(self) -> dict[str, Any]:
        """The record of the model that wrote the storage (``{}`` when it records none)."""
        ...

    def open(self, model_record: Callable[[], dict[str, Any]]) -> None:
        """Open the storage once the store has checked its model against
        :meth:`read_model_record`: load what is there, create what is missing.

        Args:
            model_record: Makes the record of the store's model, to write where the storage
                records none yet (called only then: it may load the model's weights). The
                backend adds the dimension when the record has none and it knows it.
        """
        ...

    # -- reads -----------------------------------------------------------------------------
    def count(self) -> int:
        """Number of stored vectors."""
        ...

    def is_empty(self) -> bool:
        """Whether a search can return nothing without asking (cheaper than :meth:`count`
        where a count is a round trip)."""
        ...

    def get(self, ids: Sequence[str]) -> list[Document]:
        """Documents by id, in the order asked (missing ids left out)."""
        ...

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` present."""
        ...

    def scan(self) -> dict[str, dict[str, Any]]:
        """Every stored id with its metadata."""
        ...

    def search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents to a unit vector with their cosine, best first."""
        ...

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored (unit) vectors of these ids, in order."""
        ...

    # A backend may also define ``search_many(vectors, k, filter, fetch_k)``: ``search`` for
    # a matrix of unit query rows in one call, a list of hit lists in query order. The
    # store's batched search uses it when present and asks ``search`` per query otherwise
    # (FAISS and Milvus define it).

    # -- writes (the writer lock is held) --------------------------------------------------
    def write(self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]) -> None:
        """Upsert checked unit vectors with their documents."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove these ids (unknown ones ignored)."""
        ...

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Replace the metadata of existing records, keeping their vectors."""
        ...

    # -- life cycle ------------------------------------------------------------------------
    def lock_dir(self) -> Path | None:
        """The folder whose writer lock writes take; ``None``: no lock (a server store)."""
        ...

    def on_locked(self) -> None:
        """Checks once the writer lock is held (FAISS: nobody saved over the loaded
        generation); raising releases the lock again."""
        ...

    def has_unsaved_changes(self) -> bool:
        """Whether writes are not durable yet (FAISS, until saved): the store's ``close``
        persists them first. A write-through backend says ``False``."""
        ...

    def close(self) -> None:
        """Free what the backend opened (Milvus: a connection it made)."""
        ...
