"""The multi-vector page store on Milvus: patch rows and page records in two collections.

Layout, for a store named ``NAME``:

* ``NAME_patches`` - one row per patch: ``id`` (``"<page id>#<patch>"``, the primary key),
  ``page_id``, ``patch`` (its index in the page), ``vector`` (``FLOAT_VECTOR``, unit rows,
  an ``HNSW`` index on inner product). Milvus Lite has no ``FLOAT16_VECTOR`` (it refuses the
  field), so patches are ``float32``: ``4 x dim`` bytes each.
* ``NAME_pages`` - one row per page: ``id`` (content id), ``page_content``, ``metadata``
  (JSON), ``patches`` (the row count), and ``vector``: the page's mean patch vector,
  normalised (Milvus needs a vector field in every collection; this one costs one row).
  Its properties record the model (``imgemb.model_id``, ``imgemb.dim``).

Why a second collection and not the page fields on patch 0: a page record is the page's
*commit mark*. A write adds the patches first and the page record last; a delete removes the
record first. A page is visible only through its record, so a crash between the two calls
leaves orphan patches that no search returns (they are replaced when the page is added
again), never a page with half its patches. Metadata filters, ``get_by_ids`` and ``len`` read
one small row per page instead of scanning patch rows.

Search: one Milvus ``search`` call with every query token retrieves each token's ``token_k``
nearest patches; their pages are ranked by approximate MaxSim
(:func:`~langchain_image_embeddings.vectorstores.multivector.rank_candidate_pages`, as the
FAISS store does); the best ``max_candidates`` pages' records and patch rows are read back
(``query`` by their primary keys, in batches of about :data:`QUERY_ROWS` rows) and scored exactly by
:func:`~langchain_image_embeddings.vectorstores.multivector.maxsim_scores`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from langchain_core.documents import Document

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.images import ImageLoadOptions
from langchain_image_embeddings.vectorstores.milvus._calls import (
    TIMEOUT_S,
    call_milvus,
    on_new_client,
)
from langchain_image_embeddings.vectorstores.milvus._filters import milvus_ids_expr
from langchain_image_embeddings.vectorstores.milvus._rows import (
    WRITE_ROWS,
    check_sizes,
    json_metadata,
    row_document,
)
from langchain_image_embeddings.vectorstores.milvus._schema import (
    INDEX_PARAMS,
    INDEX_TYPE,
    MAX_ID_LENGTH,
    MAX_LIMIT,
    MAX_TEXT_LENGTH,
    SEARCH_EF,
    check_collection_name,
    model_properties,
    stored_record,
)
from langchain_image_embeddings.vectorstores.multivector._candidates import rank_candidate_pages
from langchain_image_embeddings.vectorstores.multivector._contract import (
    Filter,
    PageStoreBase,
    page_filter,
    unit_page,
)
from langchain_image_embeddings.vectorstores.multivector._maxsim import (
    maxsim_scores,
    relevance_from_maxsim,
)
from langchain_image_embeddings.vectorstores.multivector._pooling import pool_tokens

if TYPE_CHECKING:
    from typing_extensions import Self

    from langchain_image_embeddings.vectorstores.multivector._embedder import (
        MultiVectorEmbedder,
    )

__all__ = ["DEFAULT_PAGES_COLLECTION", "PAGE_FIELDS", "QUERY_ROWS", "MilvusMultiVectorStore"]

_T = TypeVar("_T")

DEFAULT_PAGES_COLLECTION = "pages"
#: Fields of a page record (the ``NAME_pages`` collection).
PAGE_FIELDS = ("id", "vector", "page_content", "metadata", "patches")
#: Fields of a patch row (the ``NAME_patches`` collection).
PATCH_FIELDS = ("id", "page_id", "patch", "vector")
#: Most patch rows read back per ``query`` call (their primary keys are listed in the filter;
#: Milvus caps ``limit`` at 16,384).
QUERY_ROWS = 4096
#: Inner product: rows and query tokens are unit vectors, so it is their cosine.
_METRIC = "IP"
_FORMAT = "multivector-pages"
#: A search first flushes after this many rows written (growing segments are brute force).
_FLUSH_BEFORE_SEARCH_ROWS = 1000


class MilvusMultiVectorStore(PageStoreBase):
    """Page images as patch vectors in Milvus (server or Milvus Lite), found by MaxSim.

    The same LangChain contract as
    :class:`~langchain_image_embeddings.vectorstores.MultiVectorImageStore`:
    ``add_images`` / ``add_texts`` / ``add_documents`` (content ids; the same bytes again are
    skipped), ``similarity_search`` (text), ``similarity_search_by_image``,
    ``similarity_search_with_relevance_scores``, ``as_retriever``, ``get_by_ids``,
    ``delete``. Scores are relevance in ``[0, 1]``: ``(1 + MaxSim / query tokens) / 2``.
    Candidates come from a Milvus search of every query token (one call), exact MaxSim
    from the candidates' patch rows read back; see the module docs for the two collections.

    Key init args:
        embedder: MultiVectorEmbedder | None
            The late-interaction model; ``None`` for vectors only (``add_vectors``,
            ``search_by_tokens``) or to open a store with the dimension it records.
        client: pymilvus.MilvusClient
            A connected client (:meth:`connect` makes one from a URI or a Milvus Lite file).
        collection_name: str
            Prefix of the two collections (``NAME_patches``, ``NAME_pages``).
        token_k: int
            Patches each query token retrieves in the candidate stage.
        max_candidates: int | None
            Pages scored exactly per query (``None``: every page found).
        pool_factor: int
            Token pooling factor applied to pages before storage (1: none).

    Example:
        .. code-block:: python

            import numpy as np
            from langchain_core.documents import Document
            from langchain_image_embeddings.vectorstores.multivector import (
                MilvusMultiVectorStore,
            )

            rng = np.random.default_rng(0)
            pages = [rng.normal(size=(16, 8)).astype(np.float32) for _ in range(3)]
            store = MilvusMultiVectorStore.connect("./pages.db", None)
            store.add_vectors(["a", "b", "c"], pages,
                              [Document(page_content=f"p{i}.png") for i in range(3)])
            assert store.search_by_tokens(pages[1][:4], k=1)[0][0].id == "b"
            store.close()
    """

    def __init__(
        self,
        embedder: MultiVectorEmbedder | None,
        *,
        client: Any,
        collection_name: str = DEFAULT_PAGES_COLLECTION,
        create: bool = True,
        timeout: float = TIMEOUT_S,
        token_k: int = 64,
        max_candidates: int | None = 512,
        pool_factor: int = 1,
        load_options: ImageLoadOptions | None = None,
    ) -> None:
        require("pymilvus", "pymilvus")
        if token_k < 1 or pool_factor < 1:
            raise ValueError("token_k and pool_factor must be at least 1")
        self.patches_collection = f"{collection_name}_patches"
        self.pages_collection = f"{collection_name}_pages"
        check_collection_name(self.patches_collection)
        self.embedder = embedder
        self.client = client
        self.collection_name = collection_name
        self.timeout = timeout
        self.token_k = token_k
        self.max_candidates = max_candidates
        self.pool_factor = pool_factor
        self.load_options = load_options
        #: Whether :meth:`close` closes the client (:meth:`connect` made it).
        self.owns_client = False
        self.mutex = threading.RLock()
        self.unflushed_rows = 0
        self._where = f"Milvus page store {collection_name!r}"
        self._dim: int | None = int(embedder.dim) if embedder is not None else None
        self._exists = bool(
            self._call("has collection", client.has_collection, self.pages_collection)
        )
        if self._exists:
            self._adopt()
        elif not create:
            raise StoreError(f"no {self._where}")
        elif self._dim is not None:
            self._create(self._dim)

    # -- collections ---------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return call_milvus(f"{what} ({self._where})", fn, *args, timeout=self.timeout, **kwargs)

    def _adopt(self) -> None:
        info = self._call("describe", self.client.describe_collection, self.pages_collection)
        fields = {f["name"]: f for f in info.get("fields", [])}
        record = stored_record(info.get("properties"))
        if not set(PAGE_FIELDS) <= set(fields) or record.get("format") != _FORMAT:
            raise StoreError(
                f"{self.pages_collection!r} is not the page collection of a multi-vector store "
                f"(fields {sorted(fields)}, format {record.get('format')!r})"
            )
        stored_model, stored_dim = record.get("model_id"), int(record.get("dim", 0))
        if self.embedder is not None and stored_model != self.embedder.model_id:
            raise ModelMismatchError(
                f"{self._where} holds pages embedded by {stored_model!r}, not "
                f"{self.embedder.model_id!r}: open it with that model or use another name"
            )
        if self._dim is not None and stored_dim != self._dim:
            raise ModelMismatchError(
                f"{self._where} holds vectors of dimension {stored_dim}, the model makes "
                f"{self._dim}"
            )
        self._dim = stored_dim
        for name in (self.patches_collection, self.pages_collection):
            self._call("load", self.client.load_collection, name)

    def _create(self, dim: int) -> None:
        """Create the patch collection, then the page collection (whose record marks the store)."""
        pymilvus = require("pymilvus", "pymilvus")
        client, data = pymilvus.MilvusClient, pymilvus.DataType
        patches = client.create_schema(auto_id=False, enable_dynamic_field=False)
        patches.add_field("id", data.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH + 16)
        patches.add_field("page_id", data.VARCHAR, max_length=MAX_ID_LENGTH)
        patches.add_field("patch", data.INT32)
        patches.add_field("vector", data.FLOAT_VECTOR, dim=int(dim))
        pages = client.create_schema(auto_id=False, enable_dynamic_field=False)
        pages.add_field("id", data.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        pages.add_field("vector", data.FLOAT_VECTOR, dim=int(dim))
        pages.add_field("page_content", data.VARCHAR, max_length=MAX_TEXT_LENGTH)
        pages.add_field("metadata", data.JSON)
        pages.add_field("patches", data.INT32)
        record = {"format": _FORMAT, "dim": int(dim)}
        if self.embedder is not None:
            record["model_id"] = self.embedder.model_id
        for name, schema, properties in (
            (self.patches_collection, patches, {}),
            (self.pages_collection, pages, model_properties(record)),
        ):
            if self._call("has collection", self.client.has_collection, name):
                continue  # patches left by a create that stopped before the page collection
            index = client.prepare_index_params()
            index.add_index(
                field_name="vector",
                index_type=INDEX_TYPE,
                metric_type=_METRIC,
                params=dict(INDEX_PARAMS),
            )
            self._call(
                "create",
                self.client.create_collection,
                name,
                schema=schema,
                index_params=index,
                consistency_level="Strong",
                properties=properties,
            )
        self._dim = int(dim)
        self._exists = True

    def _ready(self) -> bool:
        """Whether the store exists; one another client created since is adopted."""
        if not self._exists and self._call(
            "has collection", self.client.has_collection, self.pages_collection
        ):
            self._adopt()
            self._exists = True
        return self._exists

    # -- the LangChain face (the rest is PageStoreBase's) ------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the patch vectors (``None`` until known)."""
        return self._dim

    def __len__(self) -> int:
        """Number of pages."""
        return self._count(self.pages_collection)

    @property
    def patch_count(self) -> int:
        """Number of stored patch rows (with any orphans of an interrupted write)."""
        return self._count(self.patches_collection)

    def bytes_per_page(self) -> float:
        """Mean bytes of patch vectors per page (``float32``: ``4 x dim`` per patch)."""
        return 4.0 * (self._dim or 0) * self.patch_count / max(1, len(self))

    def _count(self, collection: str) -> int:
        if not self._ready():
            return 0
        rows = self._call(
            "count", self.client.query, collection, filter="", output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def _records(self, ids: Sequence[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """Page records by id (missing ones left out)."""
        found: dict[str, dict[str, Any]] = {}
        if not ids or not self._ready():
            return found
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), WRITE_ROWS):
            chunk = unique[start : start + WRITE_ROWS]
            rows = self._call(
                "get pages",
                self.client.query,
                self.pages_collection,
                filter=milvus_ids_expr(chunk),
                output_fields=fields,
                limit=len(chunk),
            )
            found.update((str(r["id"]), r) for r in rows)
        return found

    def existing_pages(self, ids: Sequence[str]) -> set[str]:
        """Which of these page ids the store holds."""
        return set(self._records(ids, ["id"]))

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Pages by id (missing ids are left out)."""
        rows = self._records(ids, ["page_content", "metadata"])
        return [row_document(rows[i]) for i in dict.fromkeys(ids) if i in rows]

    def page_vectors(self, id_: str) -> np.ndarray:
        """The stored patch vectors of one page (``float32``, in patch order).

        Raises:
            KeyError: An id that is not in the store.
        """
        rows = self._records([id_], ["patches"])
        if id_ not in rows:
            raise KeyError(id_)
        matrix, _ = self._patch_rows([id_], [int(rows[id_]["patches"])])
        return matrix

    # -- writes --------------------------------------------------------------------------
    def add_vectors(
        self, ids: Sequence[str], pages: Sequence[np.ndarray], documents: Sequence[Document]
    ) -> None:
        """Upsert pages given as patch-vector matrices (one ``(patches, dim)`` per id).

        Rows are normalised; the store's ``pool_factor`` is applied. An id already stored
        is replaced: its record is removed first, its patches next, then the new patches and
        record are written (see the module docs).

        Raises:
            StoreError: A page that is not a 2-D matrix of the store's dimension, is empty,
                has NaN/inf or zero rows, or an id or text too long (naming it); nothing is
                written. A Milvus call that fails (after retries for connection failures).
        """
        if not len(ids) == len(pages) == len(documents):
            raise ValueError("ids, pages and documents must have the same length")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in one write")
        if not ids:
            return
        check_sizes(ids, documents)
        dim = self._dim
        checked = []
        for id_, page in zip(ids, pages, strict=True):
            unit = unit_page(id_, page, dim)
            dim = int(unit.shape[1])
            checked.append(unit)
        if self.pool_factor > 1:
            checked = [pool_tokens(p, self.pool_factor) for p in checked]
        with self.mutex:
            if not self._ready():
                self._create(int(dim or 0))
            self._remove(list(ids))
            patch_rows = (
                {"id": _patch_key(i, n), "page_id": i, "patch": n, "vector": row}
                for i, page in zip(ids, checked, strict=True)
                for n, row in enumerate(page.tolist())
            )
            self._upsert(self.patches_collection, patch_rows)
            records = (
                {
                    "id": i,
                    "vector": _mean_vector(page),
                    "page_content": doc.page_content,
                    "metadata": json_metadata(doc.metadata),
                    "patches": len(page),
                }
                for i, page, doc in zip(ids, checked, documents, strict=True)
            )
            self._upsert(self.pages_collection, records)

    def _upsert(self, collection: str, rows: Iterable[dict[str, Any]]) -> None:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == WRITE_ROWS:
                self._call("upsert", self.client.upsert, collection, data=batch)
                self.unflushed_rows += len(batch)
                batch = []
        if batch:
            self._call("upsert", self.client.upsert, collection, data=batch)
            self.unflushed_rows += len(batch)

    def _remove(self, ids: list[str]) -> None:
        """Remove pages: records first (the pages vanish at once), then their patches."""
        for start in range(0, len(ids), WRITE_ROWS):
            chunk = ids[start : start + WRITE_ROWS]
            self._call(
                "delete", self.client.delete, self.pages_collection, filter=milvus_ids_expr(chunk)
            )
            self._call(
                "delete",
                self.client.delete,
                self.patches_collection,
                filter=milvus_ids_expr(chunk, field="page_id"),
            )
            self.unflushed_rows += len(chunk)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete pages by id (unknown ids are ignored); ``None`` deletes every page."""
        if not self._ready():
            return True
        with self.mutex:
            if ids is None:
                for name in (self.pages_collection, self.patches_collection):
                    self._call("delete", self.client.delete, name, filter='id != ""')
                self.unflushed_rows += 1
            else:
                self._remove([str(i) for i in ids])
        return True

    def flush(self) -> None:
        """Seal rows written since the last flush into indexed segments (a search does it by
        itself after 1,000 rows or more)."""
        if self.unflushed_rows and self._ready():
            for name in (self.patches_collection, self.pages_collection):
                self._call("flush", self.client.flush, name)
        self.unflushed_rows = 0

    def drop(self) -> None:
        """Drop both collections (pages, patches, the model record)."""
        for name in (self.pages_collection, self.patches_collection):
            if self._call("has collection", self.client.has_collection, name):
                self._call("drop", self.client.drop_collection, name)
        self._exists = False

    # -- searches ------------------------------------------------------------------------
    def search_by_tokens(
        self, query: np.ndarray, k: int = 4, filter: Filter = None
    ) -> list[tuple[Document, float]]:
        """Pages best for a query given as token vectors, with relevance in ``[0, 1]``.

        Args:
            query: ``(tokens, dim)`` query token vectors (normalised here).
            k: Number of pages.
            filter: ``{"key": value}`` metadata equality (a list value: one of), or a
                callable on a page's metadata. Candidates are filtered; when fewer than
                ``k`` pass, every matching page is scored (its records are scanned).

        Raises:
            StoreError: A query of another dimension, NaN/inf or zero rows; a failed call.
        """
        if k <= 0 or not self._ready():
            return []
        tokens = unit_page("<query>", query, self._dim)
        if self.unflushed_rows >= _FLUSH_BEFORE_SEARCH_ROWS:
            self.flush()
        fields = ["page_content", "metadata", "patches"]
        records = self._records(self._candidates(tokens), fields)
        if filter is not None:
            keep = page_filter(filter)
            records = {i: r for i, r in records.items() if keep(dict(r.get("metadata") or {}))}
            if len(records) < k:
                records = {
                    i: r for i, r in self._scan(fields) if keep(dict(r.get("metadata") or {}))
                }
        if not records:
            return []
        ids = list(records)
        counts = [int(records[i]["patches"]) for i in ids]
        rows, starts = self._patch_rows(ids, counts)
        scores = maxsim_scores(tokens, rows, starts, counts)
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            (
                row_document({**records[ids[n]], "id": ids[n]}),
                relevance_from_maxsim(float(scores[n]), len(tokens)),
            )
            for n in order
        ]

    def _candidates(self, tokens: np.ndarray) -> list[str]:
        """Page ids of each token's ``token_k`` nearest patches, best approximate MaxSim
        first, at most ``max_candidates`` (one ``search`` call for every token)."""
        limit = min(self.token_k, MAX_LIMIT)
        res = self._call(
            "search",
            self.client.search,
            self.patches_collection,
            data=tokens.tolist(),
            limit=limit,
            output_fields=[],  # the page id is in the primary key: 4x faster on Milvus Lite
            search_params={"metric_type": _METRIC, "params": {"ef": max(SEARCH_EF, limit)}},
        )
        hits = list(res or [])
        sims = np.zeros((len(tokens), limit), dtype=np.float32)
        labels = np.full((len(tokens), limit), -1, dtype=np.int64)
        number: dict[str, int] = {}
        for t, token_hits in enumerate(hits[: len(tokens)]):
            for j, hit in enumerate(list(token_hits)[:limit]):
                page = _page_of(str(hit["id"]))
                labels[t, j] = number.setdefault(page, len(number))
                sims[t, j] = float(hit["distance"])
        names = list(number)
        return [names[int(n)] for n in rank_candidate_pages(sims, labels, self.max_candidates)]

    def _scan(self, fields: list[str]) -> Iterable[tuple[str, dict[str, Any]]]:
        """Every page record, through a query iterator."""
        iterator = self._call(
            "query",
            self.client.query_iterator,
            self.pages_collection,
            batch_size=WRITE_ROWS,
            filter="",
            output_fields=fields,
        )
        try:
            while True:
                batch = call_milvus(f"query ({self._where})", iterator.next)
                if not batch:
                    return
                for row in batch:
                    yield str(row["id"]), row
        finally:
            with contextlib.suppress(Exception):
                iterator.close()

    def _patch_rows(
        self, ids: Sequence[str], counts: Sequence[int]
    ) -> tuple[np.ndarray, list[int]]:
        """The patch rows of these pages, page after page in patch order, and each page's
        first row (``query`` by primary key, about :data:`QUERY_ROWS` rows a call; a page
        is never split, so a page may have at most 16,384 patches, Milvus's query limit).

        Raises:
            StoreError: A page whose stored patch rows are not the count its record names.
        """
        dim = int(self._dim or 0)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist() if ids else []
        matrix = np.zeros((int(sum(counts)), dim), dtype=np.float32)
        position = dict(zip(ids, starts, strict=True))
        count_of = dict(zip(ids, counts, strict=True))
        filled = dict.fromkeys(ids, 0)
        done = 0
        while done < len(ids):
            end, size = done, 0
            while end < len(ids) and (end == done or size + counts[end] <= QUERY_ROWS):
                size += counts[end]
                end += 1
            keys = [_patch_key(i, n) for i in ids[done:end] for n in range(count_of[i])]
            rows = self._call(  # by primary key: faster than a page_id filter on Milvus Lite
                "get patches",
                self.client.query,
                self.patches_collection,
                filter=milvus_ids_expr(keys),
                output_fields=["vector"],
                limit=max(len(keys), 1),
            )
            for row in rows:
                key = str(row["id"])
                page, n = _page_of(key), int(key.rsplit("#", 1)[1])
                if page in position and 0 <= n < count_of[page]:
                    matrix[position[page] + n] = row["vector"]
                    filled[page] += 1
            done = end
        for page, count in zip(ids, counts, strict=True):
            if filled[page] != count:
                raise StoreError(
                    f"{self._where}: page {page!r} has {filled[page]} patch rows, its record "
                    f"names {count}: add the page again to rewrite it"
                )
        return matrix, starts

    # -- construction --------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        uri: str,
        embedder: MultiVectorEmbedder | None = None,
        *,
        collection_name: str = DEFAULT_PAGES_COLLECTION,
        token: str = "",
        create: bool = True,
        timeout: float = TIMEOUT_S,
        **kwargs: Any,
    ) -> Self:
        """A page store on the Milvus server at ``uri`` (``http://HOST:PORT``) or in a Milvus
        Lite file (``"./pages.db"``); ``kwargs`` go to the constructor (``token_k`` ...).

        Raises:
            StoreError: The server cannot be reached, or no such store and ``create`` is false.
            ModelMismatchError: ``embedder`` is not the model that wrote the store.
        """
        store = on_new_client(
            uri,
            lambda client: cls(
                embedder,
                client=client,
                collection_name=collection_name,
                create=create,
                timeout=timeout,
                **kwargs,
            ),
            token=token,
            timeout=timeout,
        )
        store.owns_client = True
        return store

    def close(self) -> None:
        """Close the connection if the store opened it (:meth:`connect`)."""
        if self.owns_client:
            with contextlib.suppress(Exception):
                self.client.close()
            self.owns_client = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _patch_key(page_id: str, patch: int) -> str:
    """The primary key of a patch row: ``"<page id>#<patch>"``."""
    return f"{page_id}#{patch}"


def _page_of(patch_key: str) -> str:
    """The page id of a patch row's primary key (the text before its last ``#``)."""
    return patch_key.rsplit("#", 1)[0]


def _mean_vector(page: np.ndarray) -> list[float]:
    """The page's mean patch vector, normalised (its record's vector field)."""
    mean = page.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    unit = mean / norm if norm > 1e-12 else page[0]
    return [float(x) for x in unit]
