"""The Chroma backend: an image store's storage in a Chroma collection (cosine space).

The collection's metadata records the model (spec, dimension, fingerprint, under
:data:`~langchain_image_embeddings.vectorstores.chroma._client.META_PREFIX`). Writes are
``upsert`` in batches under the client's maximum; every call goes through
:func:`~langchain_image_embeddings.vectorstores.chroma._client.call_chroma` (retries, then
:class:`~langchain_image_embeddings.errors.StoreError`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._records import model_record_with_dim
from langchain_image_embeddings.vectorstores.chroma._client import (
    META_PREFIX,
    call_chroma,
    is_connection_error,
    stored_record,
)
from langchain_image_embeddings.vectorstores.chroma._filters import chroma_where

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

_PAGE = 5000


class ChromaBackend:
    """One Chroma collection as an image store's storage (built by
    :class:`~langchain_image_embeddings.vectorstores.ChromaImageStore`).

    Example:
        .. code-block:: python

            store = ChromaImageStore.persistent("chroma-data", embeddings)
            store.backend.collection.name, store.backend.count()
    """

    def __init__(self, client: Any, collection_name: str) -> None:
        self.client = client
        self.collection_name = collection_name
        #: An embedded store's folder: writes lock it (``None``: a server serialises writes).
        self.folder: Path | None = None
        #: The image model's dimension, set by the store (``None``: Chroma checks it itself).
        self.dim: int | None = None
        self.mutex = threading.RLock()
        self.collection: Any = None  # created by open() when missing
        try:
            self.collection = client.get_collection(collection_name)
        except Exception as exc:
            if is_connection_error(exc):
                raise StoreError(f"cannot reach the Chroma server: {exc}") from exc

    @property
    def where(self) -> str:
        """``Chroma collection 'NAME'``, in messages."""
        return f"Chroma collection {self.collection_name!r}"

    def read_model_record(self) -> dict[str, Any]:
        """The model record in the collection's metadata (``{}``: none, or no collection)."""
        return stored_record(self.collection.metadata) if self.collection is not None else {}

    def open(self, model_record: Callable[[], dict[str, Any]]) -> None:
        """Create the collection (cosine space, the model recorded) when missing; else
        refuse one in another space."""
        if self.collection is None:
            record = model_record_with_dim(model_record(), self.dim)
            self.collection = call_chroma(
                "create collection",
                self.client.get_or_create_collection,
                self.collection_name,
                metadata={META_PREFIX + k: v for k, v in record.items()},
                configuration={"hnsw": {"space": "cosine"}},
            )
            return
        space = (self.collection.configuration.get("hnsw") or {}).get("space")
        if space not in (None, "cosine"):
            raise StoreError(f"{self.where} uses {space!r}, not cosine")

    def lock_dir(self) -> Path | None:
        """An embedded store's folder; ``None`` on a server."""
        return self.folder

    def on_locked(self) -> None:
        """Nothing to check: Chroma writes through."""

    def has_unsaved_changes(self) -> bool:
        """``False``: Chroma writes through."""
        return False

    def close(self) -> None:
        """Nothing to free: the client is the caller's (or shared per folder by chromadb)."""

    @property
    def max_batch_size(self) -> int:
        """Largest write the client accepts in one call."""
        try:
            return max(1, int(self.client.get_max_batch_size()))
        except Exception:
            return 5000

    def count(self) -> int:
        """Vectors in the collection (``0`` before it is created)."""
        if self.collection is None:
            return 0
        return int(call_chroma("count", self.collection.count))

    def is_empty(self) -> bool:
        """Whether the collection holds nothing (a count: Chroma answers it locally or fast)."""
        return self.count() == 0

    def scan(self) -> dict[str, dict[str, Any]]:
        """Every id with its metadata, a page at a time."""
        out: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            page = call_chroma(
                "get", self.collection.get, include=["metadatas"], limit=_PAGE, offset=offset
            )
            for i, meta in zip(page["ids"], page["metadatas"] or [], strict=False):
                out[i] = dict(meta or {})
            if len(page["ids"]) < _PAGE:
                return out
            offset += _PAGE

    def get(self, ids: Sequence[str]) -> list[Document]:
        """Documents by id, in the order asked (repeats answered, missing left out)."""
        # Chroma refuses repeated ids: ask once, answer per id asked for, in that order
        found = {str(d.id): d for d in self._get_documents(list(dict.fromkeys(ids)))}
        return [found[i].model_copy(deep=True) for i in ids if i in found]

    def _get_documents(self, ids: Sequence[str]) -> list[Document]:
        docs: list[Document] = []
        for start in range(0, len(ids), _PAGE):
            page = call_chroma(
                "get",
                self.collection.get,
                ids=list(ids[start : start + _PAGE]),
                include=["documents", "metadatas"],
            )
            for i, text, meta in zip(
                page["ids"], page["documents"] or [], page["metadatas"] or [], strict=False
            ):
                docs.append(Document(id=i, page_content=text or "", metadata=dict(meta or {})))
        return docs

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The ids present."""
        ids = list(dict.fromkeys(ids))  # Chroma refuses repeated ids
        found: set[str] = set()
        for start in range(0, len(ids), _PAGE):
            page = call_chroma(
                "get", self.collection.get, ids=list(ids[start : start + _PAGE]), include=[]
            )
            found.update(page["ids"])
        return found

    def _replacing(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> list[Any]:
        """Metadata that replaces, not merges: Chroma keeps keys an upsert leaves out."""
        old = {str(d.id): d.metadata for d in self.get(ids)}
        out: list[Any] = []
        for i, meta in zip(ids, metadatas, strict=True):
            new = _clean(meta)
            gone = {k: None for k in old.get(i, {}) if k not in new}
            out.append({**gone, **new} or None)
        return out

    def write(self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]) -> None:
        """``upsert`` in batches under the client's maximum (metadata replaced, not merged)."""
        step = self.max_batch_size
        for start in range(0, len(ids), step):
            stop = start + step
            chunk = list(ids[start:stop])
            call_chroma(
                "upsert",
                self.collection.upsert,
                ids=chunk,
                embeddings=vectors[start:stop],
                metadatas=self._replacing(chunk, [d.metadata for d in documents[start:stop]]),
                documents=[d.page_content for d in documents[start:stop]],
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Delete these ids in batches (unknown ones ignored)."""
        ids = list(dict.fromkeys(ids))  # Chroma refuses repeated ids
        step = self.max_batch_size
        for start in range(0, len(ids), step):
            call_chroma("delete", self.collection.delete, ids=list(ids[start : start + step]))

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Replace the metadata of these ids, keeping their vectors."""
        step = self.max_batch_size
        for start in range(0, len(ids), step):
            chunk = list(ids[start : start + step])
            call_chroma(
                "update",
                self.collection.update,
                ids=chunk,
                metadatas=self._replacing(chunk, metadatas[start : start + step]),
            )

    def search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents with their cosine (``1 - distance``)."""
        # A callable filter is applied to the fetch_k nearest hits (as in the Milvus store);
        # a dict is rewritten into Chroma's where syntax (one key, one operator per dict).
        post = filter if callable(filter) and not isinstance(filter, Mapping) else None
        where = None if post is not None else chroma_where(filter)
        n = min(max(k, fetch_k) if post is not None else k, self.count())
        if n <= 0:
            return []
        res = call_chroma(
            "query",
            self.collection.query,
            query_embeddings=[[float(x) for x in vector]],
            n_results=n,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        for i, text, meta, dist in zip(
            res["ids"][0],
            res["documents"][0],
            res["metadatas"][0],
            res["distances"][0],
            strict=True,
        ):
            doc = Document(id=i, page_content=text or "", metadata=dict(meta or {}))
            if post is None or post(doc.metadata):
                hits.append((doc, 1.0 - float(dist)))
        return hits[:k]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of these ids, in order."""
        import numpy as np

        page = call_chroma("get", self.collection.get, ids=list(ids), include=["embeddings"])
        by_id = dict(zip(page["ids"], page["embeddings"], strict=True))
        return np.asarray([by_id[i] for i in ids], dtype=np.float32)


def _clean(metadata: dict[str, Any]) -> dict[str, Any]:
    """Chroma keeps scalars and non-empty lists of one scalar type: drop ``None`` (Chroma
    cannot store it), JSON-encode anything else."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, (str, int, float, bool)):
            out[key] = value
        elif (
            isinstance(value, list)
            and value
            and type(value[0]) in (str, int, float, bool)
            and all(type(v) is type(value[0]) for v in value)
        ):
            out[key] = list(value)
        else:
            out[key] = json.dumps(value, default=str)
    return out
