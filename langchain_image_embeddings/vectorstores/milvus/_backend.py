"""The Milvus backend: an image store's storage in a Milvus collection (cosine, HNSW).

The collection's schema, index and model record are
:mod:`~langchain_image_embeddings.vectorstores.milvus._schema`; documents become rows in
:mod:`~langchain_image_embeddings.vectorstores.milvus._rows`; every call goes through
:func:`~langchain_image_embeddings.vectorstores.milvus._calls.call_milvus` (retries, then
:class:`~langchain_image_embeddings.errors.StoreError`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.documents import Document

from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._records import (
    check_model_record,
    model_record_with_dim,
)
from langchain_image_embeddings.vectorstores.milvus._calls import TIMEOUT_S, call_milvus
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
    MAX_LIMIT,
    METRIC,
    SEARCH_EF,
    check_collection_name,
    check_fields,
    check_metric,
    collection_schema,
    model_properties,
    stored_record,
)

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

_T = TypeVar("_T")

#: A search first flushes when at least this many rows were written since the last flush:
#: Milvus indexes sealed segments only, and searches brute-force the growing ones (on 20k
#: unflushed rows a search took 853 ms, 79 ms once flushed). Fewer rows cost less to scan
#: than a flush.
FLUSH_BEFORE_SEARCH_ROWS = 1000


class MilvusBackend:
    """One Milvus collection as an image store's storage (built by
    :class:`~langchain_image_embeddings.vectorstores.MilvusImageStore`).

    Example:
        .. code-block:: python

            store = MilvusImageStore.connect("http://127.0.0.1:19530", embeddings)
            store.backend.collection_name, store.backend.count()
    """

    def __init__(
        self,
        client: Any,
        collection_name: str,
        *,
        create: bool = True,
        timeout: float = TIMEOUT_S,
    ) -> None:
        check_collection_name(collection_name)
        self.client = client
        self.collection_name = collection_name
        self.timeout = timeout
        #: Whether :meth:`close` closes the client (the store made it).
        self.owns_client = False
        self.mutex = threading.RLock()
        self._where = f"Milvus collection {collection_name!r}"
        self._dim: int | None = None
        self._fixed_dim = False  # an image model's dimension: kept when the collection is dropped
        self._model_record: Callable[[], dict[str, Any]] | None = None  # set by open()
        #: Rows written (upserted, deleted, relabelled) since the last flush.
        self.unflushed_rows = 0
        self._exists = bool(self._call("has collection", client.has_collection, collection_name))
        if not self._exists and not create:
            raise StoreError(f"no {self._where}")
        self._info = self._describe() if self._exists else {}
        if self._exists:
            check_fields(self._info, self._where)  # not a collection of ours: said first

    def set_dim(self, dim: int | None) -> None:
        """The image model's dimension (before :meth:`open`); ``None`` for a text model,
        whose collection is created on its first write."""
        self._dim = dim
        self._fixed_dim = dim is not None

    @property
    def exists(self) -> bool:
        """Whether the collection exists (as far as this backend knows)."""
        return self._exists

    def read_model_record(self) -> dict[str, Any]:
        """The model record in the collection's properties (``{}``: none, or no collection)."""
        return stored_record(self._info.get("properties"))

    def open(self, model_record: Callable[[], dict[str, Any]]) -> None:
        """Adopt the collection (schema, dimension and metric checked, the model recorded
        where none is, then loaded), or create it when the dimension is known."""
        self._model_record = model_record
        if self._exists:
            self._adopt(self._info, self.read_model_record(), checked=True)
        elif self._dim is not None:
            self._create(self._dim)

    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return call_milvus(f"{what} ({self._where})", fn, *args, timeout=self.timeout, **kwargs)

    def _describe(self) -> dict[str, Any]:
        info: dict[str, Any] = self._call(
            "describe", self.client.describe_collection, self.collection_name
        )
        return info

    def _adopt(self, info: Mapping[str, Any], stored: dict[str, Any], *, checked: bool) -> None:
        """Check an existing collection: our schema, cosine, the same model (``checked``: the
        store has checked the model, at open; not yet for one another client created since)."""
        dim = check_fields(info, self._where)
        if not checked and self._model_record is not None:
            if stored:
                check_model_record(stored, self._model_record(), self._where)
            elif self.count() > 0:
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
        record = self._model_record() if self._model_record is not None else {}
        return model_properties(model_record_with_dim(record, self._dim))

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

    def has_unsaved_changes(self) -> bool:
        """``False``: every write is an ``upsert`` on the server."""
        return False

    def close(self) -> None:
        """Close the connection if the store opened it (``MilvusImageStore.connect``)."""
        if self.owns_client:
            with contextlib.suppress(Exception):
                self.client.close()
            self.owns_client = False

    def _ready(self) -> bool:
        """Whether the collection exists; one created by another client since (a text model's
        collection appears on its first write) is checked and adopted, not ignored."""
        if not self._exists and self._call(
            "has collection", self.client.has_collection, self.collection_name
        ):
            self._exists = True  # before _adopt, whose count must not come back here
            try:
                info = self._describe()
                self._adopt(info, stored_record(info.get("properties")), checked=False)
            except BaseException:
                self._exists = False
                raise
        return self._exists

    def is_empty(self) -> bool:
        """Whether the collection is missing: a count is a server round trip, and a search
        of an empty collection returns no hits anyway."""
        return not self._ready()

    def drop(self) -> None:
        """Drop the whole collection (vectors, documents, the model record)."""
        if self._call("has collection", self.client.has_collection, self.collection_name):
            self._call("drop", self.client.drop_collection, self.collection_name)
        self._exists = False
        if not self._fixed_dim:
            self._dim = None

    # -- primitives ----------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the vectors (``None`` for a text model before the first write)."""
        return self._dim

    @property
    def where(self) -> str:
        """``Milvus collection 'NAME'``, in messages."""
        return self._where

    def lock_dir(self) -> Path | None:
        """``None``: the server serialises writes."""
        return None

    def on_locked(self) -> None:
        """Nothing to check (no lock is taken)."""

    def count(self) -> int:
        """Rows in the collection (a ``count(*)`` query; ``0`` when it is missing)."""
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

    def scan(self) -> dict[str, dict[str, Any]]:
        """Every id with its metadata, through a query iterator."""
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

    def get(self, ids: Sequence[str]) -> list[Document]:
        """Documents by id, in the order asked (repeats once, missing left out)."""
        rows = self._get(ids, ["page_content", "metadata"])
        return [row_document(rows[i]) for i in dict.fromkeys(ids) if i in rows]

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The ids present."""
        return set(self._get(ids, ["id"]))

    def write(self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]) -> None:
        """``upsert`` in batches; a text model's collection is created on its first write."""
        check_sizes(ids, documents)
        if not self._ready():
            self._create(int(vectors.shape[1]))
        for rows in upsert_batches(ids, vectors, documents):
            self._call("upsert", self.client.upsert, self.collection_name, data=rows)
        self.unflushed_rows += len(ids)

    def flush(self) -> None:
        """Seal the rows written since the last flush into indexed segments (Milvus builds
        the HNSW index of a sealed segment; growing segments are searched brute force)."""
        if self.unflushed_rows and self._ready():
            self._call("flush", self.client.flush, self.collection_name)
        self.unflushed_rows = 0

    def delete(self, ids: Sequence[str]) -> None:
        """Delete these ids in batches (unknown ones ignored)."""
        if not self._ready():
            return
        self.unflushed_rows += len(ids)
        for start in range(0, len(ids), WRITE_ROWS):
            self._call(
                "delete",
                self.client.delete,
                self.collection_name,
                filter=milvus_ids_expr(ids[start : start + WRITE_ROWS]),
            )

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Re-upsert these rows with new metadata (their vectors read back first)."""
        data = relabelled_rows(self._get(ids, ["vector", "page_content"]), ids, metadatas)
        self.unflushed_rows += len(data)
        for start in range(0, len(data), WRITE_ROWS):
            self._call(
                "upsert",
                self.client.upsert,
                self.collection_name,
                data=data[start : start + WRITE_ROWS],
            )

    def search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents with their cosine; a dict filter becomes a Milvus
        expression, a string is one, a callable is applied to the ``fetch_k`` nearest."""
        if not self._ready() or k <= 0:
            return []
        if self.unflushed_rows >= FLUSH_BEFORE_SEARCH_ROWS:  # after a bulk write
            self.flush()
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

    def search_many(
        self, vectors: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[list[tuple[Document, float]]]:
        """:meth:`search` for many unit queries in one request (a callable filter: one
        request per query, as :meth:`search` filters after fetching)."""
        if callable(filter) and not isinstance(filter, Mapping):
            return [self.search(v, k, filter, fetch_k) for v in vectors]
        if not self._ready() or k <= 0 or not len(vectors):
            return [[] for _ in vectors]
        if self.unflushed_rows >= FLUSH_BEFORE_SEARCH_ROWS:
            self.flush()
        limit = min(k, MAX_LIMIT)
        res = self._call(
            "search",
            self.client.search,
            self.collection_name,
            data=[[float(x) for x in v] for v in vectors],
            limit=limit,
            filter=milvus_expr(filter),
            output_fields=["page_content", "metadata"],
            search_params={"metric_type": METRIC, "params": {"ef": max(SEARCH_EF, limit)}},
        )
        hits = list(res or [])
        return [
            hit_documents(hits[n] if n < len(hits) else [], None)[:k] for n in range(len(vectors))
        ]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of these ids, in order."""
        import numpy as np

        rows = self._get(ids, ["vector"])
        return np.asarray([rows[i]["vector"] for i in ids], dtype=np.float32)
