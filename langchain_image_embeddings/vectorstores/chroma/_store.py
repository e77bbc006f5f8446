"""Chroma image store: embedded (``PersistentClient`` folder) or a Chroma server over HTTP.

The collection uses the cosine space; relevance scores are ``1 - distance / 2`` (in
``[0, 1]``, ranked like similarity). Writes are ``upsert`` with deterministic content ids
in batches under the client's maximum, so an interrupted ingest can simply be rerun. The
collection's metadata records the model (spec, dimension, fingerprint); opening it with
another model raises :class:`~langchain_image_embeddings.errors.ModelMismatchError`.

The storage is a :class:`~langchain_image_embeddings.vectorstores.chroma._backend.ChromaBackend`.
Every call to Chroma goes through one wrapper
(:func:`~langchain_image_embeddings.vectorstores.chroma._client.call_chroma`, with the client
helpers): connection failures (server down, refused, timed out) are retried a bounded
number of times with exponential backoff (``RETRIES``, ``BACKOFF_S``), then raised as
:class:`~langchain_image_embeddings.errors.StoreError`, like any other Chroma error. An
embedded (``PersistentClient``) store takes the directory's writer lock on its first
write: several writer processes on one embedded folder silently lose vectors.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError, StoreLockedError
from langchain_image_embeddings.vectorstores._records import (
    image_embeddings_of,
    recorded_image_model,
    refuse_swapped_arguments,
)
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from langchain_image_embeddings.vectorstores.chroma._backend import ChromaBackend
from langchain_image_embeddings.vectorstores.chroma._client import (
    BACKOFF_S,
    DEFAULT_COLLECTION,
    OPEN_LOCKED_TRIES,
    call_chroma,
    forget_unstarted_system,
    is_open_race,
    make_client,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_image_embeddings.embeddings import ImageEmbeddings

__all__ = ["ChromaImageStore"]


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
        refuse_swapped_arguments("ChromaImageStore", embeddings)
        backend = ChromaBackend(client, collection_name)
        if embeddings is None:
            embeddings = _recorded_model(backend)
        image = image_embeddings_of(embeddings)
        backend.dim = None if image is None else int(image.dim)
        super().__init__(embeddings, backend)
        self.backend: ChromaBackend = backend

    @property
    def client(self) -> Any:
        """The chromadb client."""
        return self.backend.client

    @property
    def collection(self) -> Any:
        """The chromadb collection."""
        return self.backend.collection

    @property
    def collection_name(self) -> str:
        """The collection's name."""
        return self.backend.collection_name

    @property
    def max_batch_size(self) -> int:
        """Largest write the client accepts in one call."""
        return self.backend.max_batch_size

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
        refuse_swapped_arguments("ChromaImageStore.persistent", embeddings, path)
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
                    forget_unstarted_system(str(path))
                if not is_open_race(exc):
                    if isinstance(exc, StoreError):
                        raise
                    raise StoreError(f"cannot open the Chroma folder {path}: {exc}") from exc
                last = exc
                continue
            store.backend.folder = Path(path)  # writes lock it from now on
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
        refuse_swapped_arguments("ChromaImageStore.http", embeddings)
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


def _recorded_model(backend: ChromaBackend) -> ImageEmbeddings:
    """The image model the collection records (for a store opened without one).

    Raises:
        StoreError: No collection, or one that records no image model.
    """
    if backend.collection is None:
        raise StoreError(
            f"no Chroma collection {backend.collection_name!r}: give a model to create one"
        )
    return recorded_image_model(backend.read_model_record(), backend.where)
