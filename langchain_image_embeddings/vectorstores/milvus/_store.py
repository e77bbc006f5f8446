"""Milvus image store: a collection on a Milvus server (or Milvus Lite) through ``pymilvus``.

The collection's schema, index and model record are in
:mod:`~langchain_image_embeddings.vectorstores.milvus._schema`; documents become rows in
:mod:`~langchain_image_embeddings.vectorstores.milvus._rows`; calls, retries and errors are
:mod:`~langchain_image_embeddings.vectorstores.milvus._calls` (all re-exported here).

The model that writes the collection (spec, dimension, fingerprint) is recorded in the
collection's **properties** (``imgemb.model``, ``imgemb.dim``, ``imgemb.fingerprint``): opening it
with another model raises :class:`~langchain_image_embeddings.errors.ModelMismatchError`.
With a text ``Embeddings`` whose dimension is unknown the collection is created on the
first write. Writes are ``upsert`` in batches of :data:`WRITE_ROWS`; the collection uses
``Strong`` consistency, so a write is visible to the next read.

Filters are the dict vocabulary of the other stores (``{"format": "PNG"}``,
``{"width": {"$gte": 512}}``, ``$in``/``$nin``/``$ne``/``$contains``, ``$and``/``$or``/``$not``),
translated by :func:`~langchain_image_embeddings.vectorstores.milvus._filters.milvus_expr`
into a Milvus boolean expression on the JSON field; a string is passed through as a Milvus
expression and a callable is applied to the ``fetch_k`` nearest.

Every call to Milvus goes through :func:`call_milvus`: connection failures are retried
(:data:`RETRIES`, :data:`BACKOFF_S`), then raised as
:class:`~langchain_image_embeddings.errors.StoreError`, like any other Milvus error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.documents import Document

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from langchain_image_embeddings.vectorstores.milvus._calls import (
    BACKOFF_S,
    RETRIES,
    TIMEOUT_S,
    call_milvus,
    connect,
)
from langchain_image_embeddings.vectorstores.milvus._filters import milvus_expr, milvus_ids_expr
from langchain_image_embeddings.vectorstores.milvus._rows import (
    WRITE_ROWS,
    check_sizes,
    hit_documents,
    relabelled_rows,
    row_document,
    upsert_batches,
)
from langchain_image_embeddings.vectorstores.milvus._schema import (
    DEFAULT_COLLECTION,
    INDEX_PARAMS,
    INDEX_TYPE,
    MAX_ID_LENGTH,
    MAX_LIMIT,
    MAX_TEXT_LENGTH,
    METRIC,
    SEARCH_EF,
    check_collection_name,
    check_fields,
    check_metric,
    collection_schema,
    milvus_info,
    model_properties,
    stored_record,
)

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.embeddings import Embeddings

__all__ = [
    "BACKOFF_S",
    "DEFAULT_COLLECTION",
    "INDEX_PARAMS",
    "INDEX_TYPE",
    "MAX_ID_LENGTH",
    "MAX_LIMIT",
    "MAX_TEXT_LENGTH",
    "METRIC",
    "RETRIES",
    "SEARCH_EF",
    "TIMEOUT_S",
    "WRITE_ROWS",
    "MilvusImageStore",
    "call_milvus",
    "connect",
    "milvus_info",
]

_T = TypeVar("_T")


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
        check_collection_name(collection_name)
        self.client = client
        self.collection_name = collection_name
        self.timeout = timeout
        self._owns_client = False
        self._where = f"Milvus collection {collection_name!r}"
        exists = bool(self._call("has collection", client.has_collection, collection_name))
        info = self._describe() if exists else {}
        stored = stored_record(info.get("properties"))
        if not exists and not create:
            raise StoreError(f"no {self._where}")
        if embeddings is None:
            if not exists:
                raise StoreError(f"no {self._where}: give a model to create one")
            if "fingerprint" not in stored:
                raise StoreError(
                    f"{self._where} records no image model ({stored.get('model')!r}): pass "
                    "the embeddings to open it"
                )
            from langchain_image_embeddings.embeddings import ImageEmbeddings

            embeddings = ImageEmbeddings(str(stored["model"]))
        super().__init__(embeddings)
        self._dim = None if self._image_embeddings is None else int(self._image_embeddings.dim)
        self._exists = exists
        if exists:
            self._adopt(info, stored)
        elif self._dim is not None:
            self._create(self._dim)

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
        client = connect(uri, token=token, timeout=timeout)
        try:
            store = cls(
                embeddings,
                client=client,
                collection_name=collection_name,
                create=create,
                timeout=timeout,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                client.close()
            raise
        store._owns_client = True
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

    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return call_milvus(f"{what} ({self._where})", fn, *args, timeout=self.timeout, **kwargs)

    def _describe(self) -> dict[str, Any]:
        info: dict[str, Any] = self._call(
            "describe", self.client.describe_collection, self.collection_name
        )
        return info

    def _adopt(self, info: Mapping[str, Any], stored: dict[str, Any]) -> None:
        """Check an existing collection: our schema, cosine, the same model."""
        dim = check_fields(info, self._where)
        if stored:
            self._check_model(stored, self._where)
        elif len(self) > 0:
            raise StoreError(f"{self._where} holds vectors from an unknown model")
        if self._dim is not None and dim is not None and dim != self._dim:
            raise StoreError(
                f"{self._where} holds {dim}-d vectors; the model gives {self._dim}-d vectors"
            )
        self._dim = self._dim or dim
        index: dict[str, Any] = {}
        with contextlib.suppress(StoreError):  # an index under another name: not checked
            index = self._call(
                "describe index", self.client.describe_index, self.collection_name, "vector"
            )
        check_metric(index, self._where)
        if not stored:
            self._call(
                "record the model",
                self.client.alter_collection_properties,
                self.collection_name,
                properties=self._properties(),
            )
        self._call("load", self.client.load_collection, self.collection_name)

    def _properties(self) -> dict[str, str]:
        return model_properties(self._model_record())

    def _create(self, dim: int) -> None:
        schema, index = collection_schema(dim)
        self._dim = int(dim)
        try:
            self._call(
                "create",
                self.client.create_collection,
                self.collection_name,
                schema=schema,
                index_params=index,
                consistency_level="Strong",
                properties=self._properties(),
            )
        except StoreError:
            # another client may have created it at the same moment: adopt theirs
            if not self._ready():
                raise
        self._exists = True

    def _release(self) -> None:
        """:meth:`close` also closes the connection if this store opened it (:meth:`connect`)."""
        if self._owns_client:
            with contextlib.suppress(Exception):
                self.client.close()
            self._owns_client = False

    def _ready(self) -> bool:
        """Whether the collection exists; one created by another client since (a text model's
        collection appears on its first write) is checked and adopted, not ignored."""
        if not self._exists and self._call(
            "has collection", self.client.has_collection, self.collection_name
        ):
            self._exists = True  # before _adopt, whose count must not come back here
            try:
                info = self._describe()
                self._adopt(info, stored_record(info.get("properties")))
            except BaseException:
                self._exists = False
                raise
        return self._exists

    def _nothing_to_search(self) -> bool:
        # A count is a server round trip: a missing collection is the only cheap answer, and
        # a search of an empty one returns no hits anyway.
        return not self._ready()

    def drop(self) -> None:
        """Drop the whole collection (vectors, documents, the model record)."""
        if self._call("has collection", self.client.has_collection, self.collection_name):
            self._call("drop", self.client.drop_collection, self.collection_name)
        self._exists = False
        if self._image_embeddings is None:
            self._dim = None

    # -- primitives ----------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the vectors (``None`` for a text model before the first write)."""
        return self._dim

    def __len__(self) -> int:
        if not self._ready():
            return 0
        rows = self._call(
            "count",
            self.client.query,
            self.collection_name,
            filter="",
            output_fields=["count(*)"],
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def records(self) -> dict[str, dict[str, Any]]:
        if not self._ready():
            return {}
        out: dict[str, dict[str, Any]] = {}
        iterator = self._call(
            "query",
            self.client.query_iterator,
            self.collection_name,
            batch_size=WRITE_ROWS,
            filter="",
            output_fields=["metadata"],
        )
        try:
            while True:
                batch = call_milvus(f"query ({self._where})", iterator.next)
                if not batch:
                    return out
                for row in batch:
                    out[str(row["id"])] = dict(row.get("metadata") or {})
        finally:
            with contextlib.suppress(Exception):
                iterator.close()

    def _get(self, ids: Sequence[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        if not self._ready() or not ids:
            return {}
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(unique), WRITE_ROWS):
            chunk = unique[start : start + WRITE_ROWS]
            rows = self._call(
                "get",
                self.client.query,
                self.collection_name,
                filter=milvus_ids_expr(chunk),
                output_fields=fields,
                limit=len(chunk),
            )
            for row in rows:
                found[str(row["id"])] = row
        return found

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        rows = self._get(ids, ["page_content", "metadata"])
        return [row_document(rows[i]) for i in dict.fromkeys(ids) if i in rows]

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        return set(self._get(ids, ["id"]))

    def _write(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        check_sizes(ids, documents)
        if not self._ready():
            self._create(int(vectors.shape[1]))
        for rows in upsert_batches(ids, vectors, documents):
            self._call("upsert", self.client.upsert, self.collection_name, data=rows)

    def _delete_ids(self, ids: Sequence[str]) -> None:
        if not self._ready():
            return
        for start in range(0, len(ids), WRITE_ROWS):
            self._call(
                "delete",
                self.client.delete,
                self.collection_name,
                filter=milvus_ids_expr(ids[start : start + WRITE_ROWS]),
            )

    def _update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        data = relabelled_rows(self._get(ids, ["vector", "page_content"]), ids, metadatas)
        for start in range(0, len(data), WRITE_ROWS):
            self._call(
                "upsert",
                self.client.upsert,
                self.collection_name,
                data=data[start : start + WRITE_ROWS],
            )

    def _search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        if not self._ready() or k <= 0:
            return []
        keep: Callable[[dict[str, Any]], bool] | None = None
        limit = k
        if callable(filter) and not isinstance(filter, Mapping):
            keep, limit, expr = filter, max(k, fetch_k), ""
        else:
            expr = milvus_expr(filter)
        limit = min(limit, MAX_LIMIT)
        res = self._call(
            "search",
            self.client.search,
            self.collection_name,
            data=[[float(x) for x in vector]],
            limit=limit,
            filter=expr,
            output_fields=["page_content", "metadata"],
            search_params={"metric_type": METRIC, "params": {"ef": max(SEARCH_EF, limit)}},
        )
        return hit_documents(res[0] if res else [], keep)[:k]

    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
        import numpy as np

        rows = self._get(ids, ["vector"])
        return np.asarray([rows[i]["vector"] for i in ids], dtype=np.float32)
