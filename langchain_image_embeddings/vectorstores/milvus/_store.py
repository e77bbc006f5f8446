"""Milvus image store: a collection on a Milvus server (or Milvus Lite) through ``pymilvus``.

The storage is a :class:`~langchain_image_embeddings.vectorstores.milvus._backend.MilvusBackend`;
the collection's schema, index and model record are in
:mod:`~langchain_image_embeddings.vectorstores.milvus._schema`; documents become rows in
:mod:`~langchain_image_embeddings.vectorstores.milvus._rows`; calls, retries and errors are
:mod:`~langchain_image_embeddings.vectorstores.milvus._calls`.

The model that writes the collection (spec, dimension, fingerprint) is recorded in the
collection's **properties** (``imgemb.model``, ``imgemb.dim``, ``imgemb.fingerprint``): opening it
with another model raises :class:`~langchain_image_embeddings.errors.ModelMismatchError`.
With a text ``Embeddings`` whose dimension is unknown the collection is created on the
first write. Writes are ``upsert`` requests of up to ``BULK_WRITE_ROWS`` rows and
``UPSERT_BYTES`` bytes (``add_images`` and ``load_shards`` hand the store
``BULK_WRITE_ROWS`` rows per call); the collection uses ``Strong`` consistency, so a write
is visible to the next read.

Filters are the dict vocabulary of the other stores (``{"format": "PNG"}``,
``{"width": {"$gte": 512}}``, ``$in``/``$nin``/``$ne``/``$contains``, ``$and``/``$or``/``$not``),
translated by :func:`~langchain_image_embeddings.vectorstores.milvus._filters.milvus_expr`
into a Milvus boolean expression on the JSON field; a string is passed through as a Milvus
expression and a callable is applied to the ``fetch_k`` nearest.

Every call to Milvus goes through ``call_milvus``: connection failures are retried
(``RETRIES``, ``BACKOFF_S``), then raised as
:class:`~langchain_image_embeddings.errors.StoreError`, like any other Milvus error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._records import (
    image_embeddings_of,
    recorded_image_model,
    refuse_swapped_arguments,
)
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from langchain_image_embeddings.vectorstores.milvus._backend import MilvusBackend
from langchain_image_embeddings.vectorstores.milvus._calls import TIMEOUT_S, on_new_client
from langchain_image_embeddings.vectorstores.milvus._rows import BULK_WRITE_ROWS
from langchain_image_embeddings.vectorstores.milvus._schema import DEFAULT_COLLECTION

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_image_embeddings.embeddings import ImageEmbeddings

__all__ = ["MilvusImageStore"]


class MilvusImageStore(ImageVectorStore):
    """Images (or texts) in a Milvus collection (cosine, HNSW), on a server or Milvus Lite.

    A LangChain ``VectorStore``; scores are relevance in ``[0, 1]``.

    Setup:
        .. code-block:: bash

            pip install "langchain-image-embeddings[milvus,timm]"
            milvus-lite server --data-dir ./milvus-data --host 127.0.0.1 --port 19530

    Key init args:
        embeddings: Embeddings | None
            An ``ImageEmbeddings`` (image documents, content ids, model fingerprint recorded
            in the collection's properties), any LangChain ``Embeddings``, or ``None``: the
            image model recorded in the collection.
        client: pymilvus.MilvusClient
            A connected client (see :meth:`connect` to make one from a URI).
        collection_name: str
            Default ``"images"`` (letters, digits and ``_``).
        create: bool
            Create the collection when missing (default); else raise ``StoreError``.
        timeout: float
            Seconds one Milvus call may take (default :data:`TIMEOUT_S`).

    Instantiate:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.vectorstores import MilvusImageStore

            embeddings = ImageEmbeddings("timm:efficientnet_lite0")
            store = MilvusImageStore.connect("http://127.0.0.1:19530", embeddings,
                                             collection_name="photos")
            store.add_images(["photos/chelsea.jpg", "photos/coffee.jpg"])
            store.similarity_search_by_image("photos/chelsea.jpg", k=1)   # [Document]
            store.similarity_search("a cat", k=3, filter={"format": "JPEG"})  # CLIP models
    """

    #: A bulk write hands the backend this many rows per call (one request per round trip).
    write_batch = BULK_WRITE_ROWS

    def __init__(
        self,
        embeddings: Embeddings | None,
        *,
        client: Any,
        collection_name: str = DEFAULT_COLLECTION,
        create: bool = True,
        timeout: float = TIMEOUT_S,
    ) -> None:
        require("pymilvus", "pymilvus")
        refuse_swapped_arguments("MilvusImageStore", embeddings)
        backend = MilvusBackend(client, collection_name, create=create, timeout=timeout)
        if embeddings is None:
            embeddings = _recorded_model(backend)
        image = image_embeddings_of(embeddings)
        backend.set_dim(None if image is None else int(image.dim))
        super().__init__(embeddings, backend)
        self.backend: MilvusBackend = backend

    @property
    def client(self) -> Any:
        """The ``pymilvus.MilvusClient``."""
        return self.backend.client

    @property
    def collection_name(self) -> str:
        """The collection's name."""
        return self.backend.collection_name

    @property
    def timeout(self) -> float:
        """Seconds one Milvus call may take."""
        return self.backend.timeout

    def drop(self) -> None:
        """Drop the whole collection (vectors, documents, the model record)."""
        self.backend.drop()

    def flush(self) -> None:
        """Seal the rows written since the last flush into indexed segments.

        A search flushes by itself after a bulk write (1,000 rows or more since the last
        flush); ``load_shards`` / ``imgemb load`` flush once, at the end of the load (through
        :meth:`persist`).
        """
        self.backend.flush()

    def persist(self) -> None:
        """Flush: rows written are durable once the server has them; a flush makes them
        searchable through the index (see :meth:`flush`)."""
        self.backend.flush()

    # -- construction --------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        uri: str,
        embeddings: Embeddings | None = None,
        *,
        collection_name: str = DEFAULT_COLLECTION,
        token: str = "",
        create: bool = True,
        timeout: float = TIMEOUT_S,
    ) -> MilvusImageStore:
        """A collection on the Milvus server at ``uri`` (``http://HOST:PORT``), or in a Milvus
        Lite file (``"./milvus.db"``: pymilvus serves it on 127.0.0.1 from this process).

        Raises:
            StoreError: The server cannot be reached (after :data:`RETRIES` tries), no such
                collection and ``create`` is false, or it is not a collection of this store.
            ModelMismatchError: ``embeddings`` is not the model that wrote the collection.
        """
        refuse_swapped_arguments("MilvusImageStore.connect", embeddings, uri, path_name="uri")
        store = on_new_client(
            uri,
            lambda client: cls(
                embeddings,
                client=client,
                collection_name=collection_name,
                create=create,
                timeout=timeout,
            ),
            token=token,
            timeout=timeout,
        )
        store.backend.owns_client = True
        return store

    @classmethod
    def http(
        cls,
        host: str,
        port: int,
        embeddings: Embeddings | None = None,
        *,
        collection_name: str = DEFAULT_COLLECTION,
        create: bool = True,
    ) -> MilvusImageStore:
        """A collection on the Milvus server at ``host:port`` (see :meth:`connect`)."""
        refuse_swapped_arguments("MilvusImageStore.http", embeddings)
        return cls.connect(
            f"http://{host}:{int(port)}", embeddings, collection_name=collection_name, create=create
        )

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        client: Any = None,
        uri: str | None = None,
        collection_name: str = DEFAULT_COLLECTION,
        **kwargs: Any,
    ) -> MilvusImageStore:
        """A store holding ``texts`` (image URIs for an image model).

        Args:
            client: A ``pymilvus.MilvusClient``; else ``uri`` (``http://HOST:PORT`` or a
                Milvus Lite file ``*.db``).
        """
        if client is not None:
            store = cls(embedding, client=client, collection_name=collection_name)
        elif uri is not None:
            store = cls.connect(uri, embedding, collection_name=collection_name)
        else:
            raise ValueError("MilvusImageStore.from_texts needs client= or uri=")
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _recorded_model(backend: MilvusBackend) -> ImageEmbeddings:
    """The image model the collection records (for a store opened without one).

    Raises:
        StoreError: No collection, or one that records no image model.
    """
    if not backend.exists:
        raise StoreError(f"no {backend.where}: give a model to create one")
    return recorded_image_model(backend.read_model_record(), backend.where)
