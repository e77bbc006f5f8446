"""Milvus image store: a collection on a Milvus server (or Milvus Lite) through ``pymilvus``.

Schema of a collection this store creates:

* ``id`` - ``VARCHAR(512)``, the primary key (content ids for image models);
* ``vector`` - ``FLOAT_VECTOR(dim)``, unit vectors, metric ``COSINE``, an ``HNSW`` index
  (:data:`INDEX_PARAMS`; searches use ``ef = max(`` :data:`SEARCH_EF` ``, k)``);
* ``page_content`` - ``VARCHAR(65535)``, the image URI (or the text);
* ``metadata`` - ``JSON``, the document's metadata.

The model that writes the collection (spec, dimension, fingerprint) is recorded in the
collection's **properties** (``imgemb.model``, ``imgemb.dim``, ``imgemb.fingerprint``): opening it
with another model raises :class:`~langchain_image_embeddings.errors.ModelMismatchError`.
With a text ``Embeddings`` whose dimension is unknown the collection is created on the
first write. Writes are ``upsert`` in batches of :data:`WRITE_ROWS`; the collection uses
``Strong`` consistency, so a write is visible to the next read.

Filters are the dict vocabulary of the other stores (``{"format": "PNG"}``,
``{"width": {"$gte": 512}}``, ``$in``/``$nin``/``$ne``/``$contains``, ``$and``/``$or``/``$not``),
translated by :func:`~langchain_image_embeddings.vectorstores.milvus_filters.milvus_expr`
into a Milvus boolean expression on the JSON field; a string is passed through as a Milvus
expression and a callable is applied to the ``fetch_k`` nearest.

Every call to Milvus goes through :func:`call_milvus`: connection failures are retried
(:data:`RETRIES`, :data:`BACKOFF_S`), then raised as
:class:`~langchain_image_embeddings.errors.StoreError`, like any other Milvus error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.documents import Document

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from langchain_image_embeddings.vectorstores.filters import metadata_matches
from langchain_image_embeddings.vectorstores.milvus_filters import milvus_expr
from langchain_image_embeddings.vectorstores.retry import call_with_retries

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.embeddings import Embeddings

DEFAULT_COLLECTION = "images"
#: Tries of one Milvus call when the connection fails (refused, unavailable, timed out).
RETRIES = 3
#: Wait before the second try; doubled before each further one.
BACKOFF_S = 0.2
#: Seconds one Milvus call may take.
TIMEOUT_S = 30.0
#: Rows per ``upsert`` / ``get`` / ``delete`` call.
WRITE_ROWS = 1000
#: The vector index: HNSW on cosine (Milvus Lite and Milvus both support it).
INDEX_TYPE = "HNSW"
INDEX_PARAMS: dict[str, int] = {"M": 16, "efConstruction": 200}
#: Smallest HNSW ``ef`` of a search (raised to ``k`` when ``k`` is larger).
SEARCH_EF = 64
METRIC = "COSINE"
#: Largest ``limit`` Milvus accepts in one search.
MAX_LIMIT = 16384
MAX_ID_LENGTH = 512
MAX_TEXT_LENGTH = 65535

_PROP = "imgemb."
_FIELDS = ("id", "vector", "page_content", "metadata")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_T = TypeVar("_T")

# -- calls, retries, quiet logs -------------------------------------------------------------
_quiet = threading.local()


class _QuietInsideCalls(logging.Filter):
    """Drop pymilvus's own error logs (a traceback per failed RPC) inside :func:`call_milvus`:
    the error is raised to the caller as a ``StoreError`` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


_QUIET_LOGGERS = ("pymilvus.decorators", "pymilvus.client.iterator.query_iterator")
_filter_installed = False


def _install_quiet_filter() -> None:
    global _filter_installed
    if not _filter_installed:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).addFilter(_QuietInsideCalls())
        _filter_installed = True


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    _install_quiet_filter()
    before = getattr(_quiet, "on", False)
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = before


def _is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the server cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        code = getattr(current, "code", None)
        if callable(code):  # grpc.RpcError
            with contextlib.suppress(Exception):
                if getattr(code(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                    return True
        text = str(current).lower()
        if "fail connecting to server" in text or "server unavailable" in text:
            return True
        if type(current).__name__ == "MilvusUnavailableException":
            return True
        current = current.__cause__ or current.__context__
    return False


def call_milvus(
    what: str,
    fn: Callable[..., _T],
    *args: Any,
    retries: int = RETRIES,
    backoff_s: float = BACKOFF_S,
    **kwargs: Any,
) -> _T:
    """Call ``fn``; retry connection failures ``retries`` times in all, then raise ``StoreError``.

    Any other exception from Milvus is raised at once as :class:`StoreError` (our own
    :class:`StoreError` subclasses pass through unchanged).

    Example:
        .. code-block:: python

            names = call_milvus("list collections", client.list_collections)
    """
    return call_with_retries(
        "Milvus",
        what,
        fn,
        *args,
        is_connection_error=_is_connection_error,
        retries=retries,
        backoff_s=backoff_s,
        quiet=_quiet_logs,
        describe=_message,
        **kwargs,
    )


def _message(exc: BaseException | None) -> str:
    return str(getattr(exc, "message", None) or exc)


def connect(uri: str, *, token: str = "", timeout: float = TIMEOUT_S) -> Any:
    """A ``pymilvus.MilvusClient`` for ``uri`` (``http://HOST:PORT``), with retries.

    Raises:
        StoreError: The server cannot be reached.
    """
    pymilvus = require("pymilvus", "pymilvus")
    try:
        return call_milvus(
            f"connect to {uri}", pymilvus.MilvusClient, uri=uri, token=token, timeout=timeout
        )
    except StoreError as exc:
        raise StoreError(f"cannot reach the Milvus server at {uri}: {exc}") from exc


# -- the store ----------------------------------------------------------------------------
def _stored_record(properties: Mapping[str, Any] | None) -> dict[str, Any]:
    props = properties or {}
    return {k[len(_PROP) :]: v for k, v in props.items() if str(k).startswith(_PROP)}


def _json_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata as plain JSON (non-JSON values become strings)."""
    out: dict[str, Any] = json.loads(json.dumps(dict(metadata), default=str))
    return out


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
        if not _NAME.match(collection_name):
            raise StoreError(
                f"invalid Milvus collection name {collection_name!r}: letters, digits and _, "
                "not starting with a digit"
            )
        self.client = client
        self.collection_name = collection_name
        self.timeout = timeout
        self._owns_client = False
        self._where = f"Milvus collection {collection_name!r}"
        exists = bool(self._call("has collection", client.has_collection, collection_name))
        info = self._describe() if exists else {}
        stored = _stored_record(info.get("properties"))
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
        """A collection on the Milvus server at ``uri`` (``http://HOST:PORT``).

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
            client: A ``pymilvus.MilvusClient``; else ``uri`` (``http://HOST:PORT``).
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
        fields = {f["name"]: f for f in info.get("fields", [])}
        if not set(_FIELDS) <= set(fields):
            raise StoreError(
                f"{self._where} is not an image-store collection: it has the fields "
                f"{sorted(fields)}, expected {list(_FIELDS)}"
            )
        dim = int((fields["vector"].get("params") or {}).get("dim", 0)) or None
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
        metric = (index or {}).get("metric_type")
        if metric not in (None, METRIC, "IP"):
            raise StoreError(f"{self._where} uses the {metric} metric, not cosine")
        if not stored:
            self._call(
                "record the model",
                self.client.alter_collection_properties,
                self.collection_name,
                properties=self._properties(),
            )
        self._call("load", self.client.load_collection, self.collection_name)

    def _properties(self) -> dict[str, str]:
        record = self._model_record()
        return {_PROP + k: str(v) for k, v in record.items()}

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(
            auto_id=False,
            enable_dynamic_field=False,
            description="langchain-image-embeddings image store",
        )
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        schema.add_field("page_content", DataType.VARCHAR, max_length=MAX_TEXT_LENGTH)
        schema.add_field("metadata", DataType.JSON)
        index = MilvusClient.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type=INDEX_TYPE,
            metric_type=METRIC,
            params=dict(INDEX_PARAMS),
        )
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
            if not self._call("has collection", self.client.has_collection, self.collection_name):
                raise
            info = self._describe()
            self._adopt(info, _stored_record(info.get("properties")))
        self._exists = True

    def _release(self) -> None:
        """:meth:`close` also closes the connection if this store opened it (:meth:`connect`)."""
        if self._owns_client:
            with contextlib.suppress(Exception):
                self.client.close()
            self._owns_client = False

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
        if not self._exists:
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
        if not self._exists:
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
        if not self._exists or not ids:
            return {}
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(unique), WRITE_ROWS):
            rows = self._call(
                "get",
                self.client.get,
                self.collection_name,
                ids=unique[start : start + WRITE_ROWS],
                output_fields=fields,
            )
            for row in rows:
                found[str(row["id"])] = row
        return found

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        rows = self._get(ids, ["page_content", "metadata"])
        return [_document(rows[i]) for i in dict.fromkeys(ids) if i in rows]

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        return set(self._get(ids, ["id"]))

    def _write(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        for i, doc in zip(ids, documents, strict=True):
            if len(i.encode()) > MAX_ID_LENGTH:
                raise StoreError(f"id {i[:60]!r}... is longer than {MAX_ID_LENGTH} bytes")
            if len(doc.page_content.encode()) > MAX_TEXT_LENGTH:
                raise StoreError(
                    f"page_content of {i!r} is longer than {MAX_TEXT_LENGTH} bytes (Milvus "
                    "VARCHAR): store image paths or URLs, not data: URIs; nothing was written"
                )
        if not self._exists:
            self._create(int(vectors.shape[1]))
        for start in range(0, len(ids), WRITE_ROWS):
            stop = start + WRITE_ROWS
            rows = [
                {
                    "id": i,
                    "vector": row,
                    "page_content": doc.page_content,
                    "metadata": _json_metadata(doc.metadata),
                }
                for i, row, doc in zip(
                    ids[start:stop],
                    vectors[start:stop].tolist(),
                    documents[start:stop],
                    strict=True,
                )
            ]
            self._call("upsert", self.client.upsert, self.collection_name, data=rows)

    def _delete_ids(self, ids: Sequence[str]) -> None:
        if not self._exists:
            return
        for start in range(0, len(ids), WRITE_ROWS):
            self._call(
                "delete",
                self.client.delete,
                self.collection_name,
                ids=list(ids[start : start + WRITE_ROWS]),
            )

    def _update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        rows = self._get(ids, ["vector", "page_content"])
        data = [
            {
                "id": i,
                "vector": [float(x) for x in rows[i]["vector"]],
                "page_content": rows[i]["page_content"],
                "metadata": _json_metadata(meta),
            }
            for i, meta in zip(ids, metadatas, strict=True)
            if i in rows
        ]
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
        if not self._exists or k <= 0:
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
        hits: list[tuple[Document, float]] = []
        for hit in res[0] if res else []:
            entity = dict(hit.get("entity") or {})
            entity["id"] = hit["id"]
            doc = _document(entity)
            if keep is not None and not metadata_matches(doc.metadata, keep):
                continue
            hits.append((doc, float(hit["distance"])))
        return hits[:k]

    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
        import numpy as np

        rows = self._get(ids, ["vector"])
        return np.asarray([rows[i]["vector"] for i in ids], dtype=np.float32)


def _document(row: Mapping[str, Any]) -> Document:
    return Document(
        id=str(row["id"]),
        page_content=row.get("page_content") or "",
        metadata=dict(row.get("metadata") or {}),
    )


def milvus_info(uri: str, collection_name: str, *, token: str = "") -> dict[str, Any]:
    """What a collection holds and which model wrote it, without loading the model.

    Raises:
        StoreError: The server cannot be reached or has no such collection.
    """
    client = connect(uri, token=token)
    try:
        where = f"Milvus collection {collection_name!r}"
        if not call_milvus("has collection", client.has_collection, collection_name):
            raise StoreError(f"no {where} on {uri}")
        info = call_milvus("describe", client.describe_collection, collection_name)
        stored = _stored_record(info.get("properties"))
        rows = call_milvus(
            "count", client.query, collection_name, filter="", output_fields=["count(*)"]
        )
        index = call_milvus("describe index", client.describe_index, collection_name, "vector")
        index = index or {}
        return {
            "count": int(rows[0]["count(*)"]) if rows else 0,
            "model": stored.get("model"),
            "dim": int(stored["dim"])
            if str(stored.get("dim", "")).isdigit()
            else stored.get("dim"),
            "metric": str(index.get("metric_type", "")).lower() or None,
            "index": index.get("index_type"),
        }
    finally:
        with contextlib.suppress(Exception):
            client.close()
