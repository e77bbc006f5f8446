"""Chroma image store: embedded (``PersistentClient`` folder) or a Chroma server over HTTP.

The collection uses the cosine space; relevance scores are ``1 - distance / 2`` (in
``[0, 1]``, ranked like similarity). Writes are ``upsert`` with deterministic content ids
in batches under the client's maximum, so an interrupted ingest can simply be rerun. The
collection's metadata records the model (spec, dimension, fingerprint); opening it with
another model raises :class:`~langchain_image_embeddings.errors.ModelMismatchError`.

Every call to Chroma goes through one wrapper (:func:`call_chroma`, with the client
helpers in :mod:`~langchain_image_embeddings.vectorstores.chroma._client`, re-exported
here): connection failures (server down,
refused, timed out) are retried a bounded number of times with exponential backoff
(:data:`RETRIES`, :data:`BACKOFF_S`), then raised as
:class:`~langchain_image_embeddings.errors.StoreError`, like any other Chroma error. An
embedded (``PersistentClient``) store takes the directory's writer lock on its first
write: several writer processes on one embedded folder silently lose vectors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError, StoreLockedError
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from langchain_image_embeddings.vectorstores.chroma._client import (
    BACKOFF_S,
    DEFAULT_COLLECTION,
    META_PREFIX,
    OPEN_LOCKED_TRIES,
    RETRIES,
    _forget_unstarted_system,
    _is_connection_error,
    _is_open_race,
    _stored_record,
    call_chroma,
    chroma_info,
    client_settings,
    make_client,
)
from langchain_image_embeddings.vectorstores.chroma._filters import chroma_where

if TYPE_CHECKING:
    import os

    import numpy as np
    from langchain_core.embeddings import Embeddings

__all__ = [
    "BACKOFF_S",
    "DEFAULT_COLLECTION",
    "META_PREFIX",
    "OPEN_LOCKED_TRIES",
    "RETRIES",
    "ChromaImageStore",
    "call_chroma",
    "chroma_info",
    "client_settings",
    "make_client",
]

_PAGE = 5000


def _chroma_relevance(distance: float) -> float:
    return min(1.0, max(0.0, 1.0 - float(distance) / 2.0))


class ChromaImageStore(ImageVectorStore):
    """Images (or texts) in a Chroma collection (cosine space), embedded or on a server.

    A LangChain ``VectorStore``; scores are relevance in ``[0, 1]``.

    Setup:
        .. code-block:: bash

            pip install "langchain-image-embeddings[chroma,timm]"
            chroma run --path ./chroma-data --host 127.0.0.1 --port 8000   # for a server

    Key init args:
        embeddings: Embeddings | None
            An ``ImageEmbeddings`` (image documents, content ids, model fingerprint recorded
            in the collection), any LangChain ``Embeddings``, or ``None``: the image model
            recorded in the collection.
        client: chromadb client
            ``chromadb.PersistentClient(path)``, ``chromadb.HttpClient(host, port)`` or
            ``chromadb.EphemeralClient()``.
        collection_name: str
            Default ``"images"``.

    Instantiate:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.vectorstores import ChromaImageStore

            embeddings = ImageEmbeddings("timm:efficientnet_lite0")
            local = ChromaImageStore.persistent("chroma-data", embeddings)
            local.add_texts(["photos/chelsea.jpg", "photos/coffee.jpg"])   # image URIs
            local.similarity_search_by_image("photos/chelsea.jpg", k=1)   # [Document]
            # on a server: ChromaImageStore.http("127.0.0.1", 8000, embeddings, collection_name="photos")
    """

    def __init__(
        self,
        embeddings: Embeddings | None,
        *,
        client: Any,
        collection_name: str = DEFAULT_COLLECTION,
    ) -> None:
        require("chromadb", "chromadb")
        self.client = client
        self.collection_name = collection_name
        self._folder: Path | None = None  # an embedded store's folder: writes lock it
        existing = None
        try:
            existing = client.get_collection(collection_name)
        except Exception as exc:
            if _is_connection_error(exc):
                raise StoreError(f"cannot reach the Chroma server: {exc}") from exc
            existing = None
        stored = _stored_record(existing.metadata) if existing is not None else {}
        if embeddings is None:
            if existing is None:
                raise StoreError(
                    f"no Chroma collection {collection_name!r}: give a model to create one"
                )
            if "fingerprint" not in stored:
                raise StoreError(
                    f"Chroma collection {collection_name!r} records no image model "
                    f"({stored.get('model')!r}): pass the embeddings to open it"
                )
            from langchain_image_embeddings.embeddings import ImageEmbeddings

            embeddings = ImageEmbeddings(str(stored["model"]))
        super().__init__(embeddings)
        self._dim = None if self._image_embeddings is None else int(self._image_embeddings.dim)
        where = f"Chroma collection {collection_name!r}"
        if existing is None:
            record = self._model_record()
            self.collection = call_chroma(
                "create collection",
                client.get_or_create_collection,
                collection_name,
                metadata={META_PREFIX + k: v for k, v in record.items()},
                configuration={"hnsw": {"space": "cosine"}},
            )
        else:
            if stored:
                self._check_model(stored, where)
            elif existing.count() > 0:
                raise StoreError(f"{where} holds vectors from an unknown model")
            self.collection = existing
            space = (existing.configuration.get("hnsw") or {}).get("space")
            if space not in (None, "cosine"):
                raise StoreError(f"{where} uses {space!r}, not cosine")

    @classmethod
    def persistent(
        cls,
        path: str | os.PathLike[str],
        embeddings: Embeddings | None = None,
        *,
        collection_name: str = DEFAULT_COLLECTION,
    ) -> ChromaImageStore:
        """An embedded store in the folder ``path`` (one writer process at a time).

        Opening takes no lock (readers never need one). Another process opening or writing
        the same folder at that moment can hold Chroma's SQLite lock, or race it to create
        the fresh folder's tables: the open is then retried with backoff
        (:data:`OPEN_LOCKED_TRIES` tries in all) before giving up.

        Raises:
            StoreLockedError: The folder stayed locked by another process.
            StoreError: The folder cannot be opened, or holds another model's vectors.
        """
        require("chromadb", "chromadb")
        last: BaseException | None = None
        for attempt in range(OPEN_LOCKED_TRIES):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            client = None
            try:
                client = make_client("PersistentClient", path=str(path))
                store = cls(embeddings, client=client, collection_name=collection_name)
            except Exception as exc:
                if client is None:
                    _forget_unstarted_system(str(path))
                if not _is_open_race(exc):
                    if isinstance(exc, StoreError):
                        raise
                    raise StoreError(f"cannot open the Chroma folder {path}: {exc}") from exc
                last = exc
                continue
            store._folder = Path(path)
            return store
        raise StoreLockedError(
            f"store locked: the Chroma folder {path} stayed locked by another process for "
            f"{OPEN_LOCKED_TRIES} tries ({last}); only one writer at a time may open a store "
            "directory - wait for it to finish"
        ) from last

    @classmethod
    def http(
        cls,
        host: str,
        port: int,
        embeddings: Embeddings | None = None,
        *,
        collection_name: str = DEFAULT_COLLECTION,
    ) -> ChromaImageStore:
        """A collection on a Chroma server (``chroma run``)."""
        require("chromadb", "chromadb")
        try:
            client = call_chroma(
                f"connect to {host}:{port}", make_client, "HttpClient", host=host, port=int(port)
            )
            call_chroma(f"heartbeat of {host}:{port}", client.heartbeat)
        except StoreError as exc:
            raise StoreError(f"cannot reach the Chroma server at {host}:{port}: {exc}") from exc
        return cls(embeddings, client=client, collection_name=collection_name)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        client: Any = None,
        persist_directory: str | os.PathLike[str] | None = None,
        collection_name: str = DEFAULT_COLLECTION,
        **kwargs: Any,
    ) -> ChromaImageStore:
        """A store holding ``texts`` (image URIs for an image model).

        Args:
            client: A chromadb client; else ``persist_directory`` (embedded folder); else an
                in-memory ``EphemeralClient``.
        """
        if client is None and persist_directory is not None:
            store = cls.persistent(persist_directory, embedding, collection_name=collection_name)
        else:
            if client is None:
                client = make_client("EphemeralClient")
            store = cls(embedding, client=client, collection_name=collection_name)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # -- locking -------------------------------------------------------------------------
    def _lock_dir(self) -> Path | None:
        return self._folder  # an embedded folder; a server serialises writes itself

    # -- primitives ----------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the vectors (``None`` for a text model: Chroma checks it itself)."""
        return self._dim

    @property
    def max_batch_size(self) -> int:
        """Largest write the client accepts in one call."""
        try:
            return max(1, int(self.client.get_max_batch_size()))
        except Exception:
            return 5000

    def __len__(self) -> int:
        return int(call_chroma("count", self.collection.count))

    def records(self) -> dict[str, dict[str, Any]]:
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

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
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
        old = {str(d.id): d.metadata for d in self.get_by_ids(ids)}
        out: list[Any] = []
        for i, meta in zip(ids, metadatas, strict=True):
            new = _clean(meta)
            gone = {k: None for k in old.get(i, {}) if k not in new}
            out.append({**gone, **new} or None)
        return out

    def _write(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
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

    def _delete_ids(self, ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(ids))  # Chroma refuses repeated ids
        step = self.max_batch_size
        for start in range(0, len(ids), step):
            call_chroma("delete", self.collection.delete, ids=list(ids[start : start + step]))

    def _update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        step = self.max_batch_size
        for start in range(0, len(ids), step):
            chunk = list(ids[start : start + step])
            call_chroma(
                "update",
                self.collection.update,
                ids=chunk,
                metadatas=self._replacing(chunk, metadatas[start : start + step]),
            )

    def _search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        # A callable filter is applied to the fetch_k nearest hits (as in the Milvus store);
        # a dict is rewritten into Chroma's where syntax (one key, one operator per dict).
        post = filter if callable(filter) and not isinstance(filter, Mapping) else None
        where = None if post is not None else chroma_where(filter)
        n = min(max(k, fetch_k) if post is not None else k, len(self))
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

    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
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
