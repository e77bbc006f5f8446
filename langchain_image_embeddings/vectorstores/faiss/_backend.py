"""The FAISS backend: rows, tombstones, exact and approximate search, and the store's folder.

:class:`FAISSBackend` is the storage under a
:class:`~langchain_image_embeddings.vectorstores.FAISSImageStore` (see
:mod:`~langchain_image_embeddings.vectorstores.faiss._store` for the files on disk and
the guarantees). It holds what the store knows about its rows (id, document, deleted or
not), their vectors (:class:`~langchain_image_embeddings.vectorstores.faiss._rows.RowVectors`:
saved segments memory-mapped, unsaved rows in RAM) and its approximate index
(:mod:`~langchain_image_embeddings.vectorstores.faiss._index`), and it loads and saves the
folder: a generation is loaded with its checksums verified and its vectors mapped; a save is
incremental and atomic (the files are :mod:`~langchain_image_embeddings.vectorstores.faiss._files`).
The writer lock and the model check are the store's; :meth:`FAISSBackend.save` expects the
lock held.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from langchain_core.documents import Document

from langchain_image_embeddings._atomic import write_atomic
from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._filters import metadata_matches
from langchain_image_embeddings.vectorstores._records import (
    check_model_record,
    model_record_with_dim,
)
from langchain_image_embeddings.vectorstores.faiss import _files as files
from langchain_image_embeddings.vectorstores.faiss import _index as ann
from langchain_image_embeddings.vectorstores.faiss._documents import (
    RecordFile,
    SavedRecords,
    document_of,
    record_of,
)
from langchain_image_embeddings.vectorstores.faiss._files import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    read_manifest,
)
from langchain_image_embeddings.vectorstores.faiss._ids import RowIds
from langchain_image_embeddings.vectorstores.faiss._rows import RowVectors, Segment, map_segment

if TYPE_CHECKING:
    import numpy as np

_P = ParamSpec("_P")
_R = TypeVar("_R")

_LOAD_TRIES = 5
#: The recall@10 an approximate index is tuned to unless the store is given another.
DEFAULT_RECALL_TARGET = 0.95


def serialised(method: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """Run ``method`` holding the backend's mutex: rows, ids and documents change together."""

    @functools.wraps(method)
    def locked(self: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.mutex:
            return method(self, *args, **kwargs)

    return locked


class FAISSBackend:
    """Rows, search and folder of a FAISS image store (built by
    :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore`).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore(embeddings, "index")
            store.backend.count(), store.backend.index_info["kind"]
    """

    _rows: RowVectors  # every row's vector (deleted too): saved segments mapped
    _saved_docs: SavedRecords  # saved rows' documents: records files, read for results

    #: Saves rewrite everything while the live vectors take at most this many bytes.
    full_save_below_bytes: int = 8 << 20
    #: Compact when deleted rows pass this fraction of all rows ...
    compact_deleted_fraction: float = 0.2
    #: ... or when a save would leave more segments than this (the base not counted).
    max_segments: int = 16
    #: Rewrite the index file when rows added since it was written pass this fraction.
    index_lag_fraction: float = 0.1

    def __init__(
        self,
        path: Path | None,
        *,
        dim: int | None,
        index: str | None = None,
        recall_target: float | None = None,
        memory_budget: int | str | None = None,
        expected_rows: int | None = None,
    ) -> None:
        self.path = path
        self.mutex = threading.RLock()
        self._dim = dim
        self._kind = ann.check_kind(index) if index is not None else "flat"
        # settings given to the constructor (else the manifest's)
        self._given = {
            "requested": index is not None,
            "recall_target": recall_target is not None,
            "memory_budget": memory_budget is not None,
            "expected_rows": expected_rows is not None,
        }
        self.recall_target = (
            DEFAULT_RECALL_TARGET if recall_target is None else float(recall_target)
        )
        if not 0.0 < self.recall_target <= 1.0:
            raise ValueError(f"recall_target {recall_target!r}: expected a recall in (0, 1]")
        self.memory_budget = None if memory_budget is None else ann.parse_size(memory_budget)
        if expected_rows is not None and int(expected_rows) < 1:
            raise ValueError(f"expected_rows {expected_rows!r}: expected a positive row count")
        #: The rows the index is planned for (lists, training sample), when more than held.
        self.expected_rows = None if expected_rows is None else int(expected_rows)
        if self.expected_rows is not None and ann.ivf_lists(self._kind):
            ann.check_trainable(  # a plan that cannot train is refused before any load
                self._kind, self.expected_rows, f"FAISS index planned for {expected_rows:,} rows"
            )
        self._generation: int | None = None  # the generation loaded or last saved
        self._model_record: Callable[[], dict[str, Any]] | None = None  # set by open()
        self._checked: dict[str, Any] | None = None  # the record the store checked
        self._reset()

    # -- the model record and opening ----------------------------------------------------
    @property
    def where(self) -> str:
        """``FAISS store PATH`` (or ``in-memory FAISS store``), in messages."""
        return "in-memory FAISS store" if self.path is None else f"FAISS store {self.path}"

    def read_model_record(self) -> dict[str, Any]:
        """The model record of the folder's manifest (``{}`` without a folder or a store)."""
        self._checked = {}
        if self.path is not None and (self.path / MANIFEST).exists():
            self._checked = dict(read_manifest(self.path).get("model") or {})
        return dict(self._checked)

    def open(self, model_record: Callable[[], dict[str, Any]]) -> None:
        """Load the folder's store (refusing a stock LangChain FAISS folder); the model
        record is written into the manifest at every save."""
        self._model_record = model_record
        if self.path is not None:
            if (self.path / MANIFEST).exists():
                self._load_existing(self.path)
            else:
                files.refuse_stock_folder(self.path)

    def close(self) -> None:
        """Nothing to free: mapped segments and records files close with the backend."""

    def _reset(self) -> None:
        if hasattr(self, "_rows"):
            self._rows.close()  # its segment files may be deleted next (Windows: not if open)
            self._saved_docs.close()
        self._rows = RowVectors(self._dim)
        # row -> id (None: deleted or replaced) and id -> row; saved rows' ids packed
        self._ids = RowIds()
        # saved rows' documents stay in their segments' records files, read for results;
        # only unsaved rows (and saved rows whose metadata changed) hold a Document here
        self._saved_docs = SavedRecords()
        self._docs: dict[str, Document] = {}
        self._dead_sel: Any = None  # cached selector excluding dead rows
        self._dead_mask: np.ndarray | None = None  # cached: True for dead rows
        self._meta_dirty: set[str] = set()  # metadata changed on rows already saved
        self._ann: Any = None  # approximate index over rows 0..n-1 (ids = rows), if built
        self._ann_info: dict[str, Any] = {}  # factory, tuning: what the manifest records
        self._ann_saved: dict[str, Any] | None = None  # the index entry of the last save
        self._saved: dict[str, Any] | None = None  # the data-file entries of the last save
        self._saved_rows = 0  # rows held by the segments of the last save
        self._saved_dead = 0

    # -- primitives ----------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the vectors (``None`` for an empty store of a text model)."""
        return self._dim

    @property
    def index_kind(self) -> str:
        """The index asked for (``flat``, ``hnsw``, ``ivf-pq``, ``auto`` or a factory string)."""
        return self._kind

    @property
    def index_info(self) -> dict[str, Any]:
        """The built index: ``kind``, ``factory``, tuned ``params`` and measured ``recall``."""
        if self._ann is None:
            return {"requested": self._kind, "kind": "flat", "factory": "Flat", "recall": 1.0}
        return {"requested": self._kind, **self._ann_info}

    @property
    def vectors_in_memory(self) -> int:
        """Rows whose vectors are held in RAM (unsaved); saved rows are memory-mapped."""
        return self._rows.pending_rows

    def count(self) -> int:
        """Live rows."""
        return self._ids.count

    def is_empty(self) -> bool:
        """Whether no row is live."""
        return not self._ids.count

    @serialised
    def scan(self) -> dict[str, dict[str, Any]]:
        """Every live id with its metadata (saved rows' streamed from their records files)."""
        return {rid: meta for _, rid, meta in self._live_metadata()}

    def _live_metadata(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """``(row, id, metadata)`` of every live row: saved rows streamed from disk in row
        order (a fresh dict each), then the documents held in memory."""
        for row, rid, meta in self._saved_docs.metadata():
            # a row keeps the id its records file names until it is deleted
            if rid is not None and self._ids.is_live(row) and rid not in self._docs:
                yield row, rid, dict(meta)
        in_memory = list(self._docs.items())
        rows = self._ids.rows_of([rid for rid, _ in in_memory])
        for found, (rid, doc) in zip(rows, in_memory, strict=True):
            if found is not None:  # always: a document held in memory is a live row's
                yield found, rid, dict(doc.metadata)

    def _documents_of_rows(self, rows: Iterable[int]) -> dict[int, Document]:
        """New documents of these live rows: from memory or read from the records files."""
        out: dict[int, Document] = {}
        on_disk = []
        for row in rows:
            rid = self._ids[row]
            if rid is None:
                continue
            doc = self._docs.get(rid)
            if doc is not None:
                out[row] = _copy(doc)
            else:
                on_disk.append(row)
        if on_disk:
            for row, rec in self._saved_docs.fetch(on_disk).items():
                out[row] = document_of(rec)
        return out

    @serialised
    def get(self, ids: Sequence[str]) -> list[Document]:
        """Copies of the documents of these ids (missing ones left out)."""
        rows = [r for r in self._ids.rows_of(ids) if r is not None]
        docs = self._documents_of_rows(rows)
        return [_copy(docs[r]) for r in rows]

    @serialised
    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The ids present."""
        return {i for i, r in zip(ids, self._ids.rows_of(ids), strict=True) if r is not None}

    @serialised
    def write(self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]) -> None:
        """Upsert: a present id's old row is deleted, the new rows are appended."""
        present = list(self.existing_ids(ids))
        if present:
            self.delete(present)
        self._append(ids, vectors, documents)

    def _append(
        self, ids: Sequence[str | None], vectors: np.ndarray, documents: Iterable[Document]
    ) -> None:
        import numpy as np

        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        self._rows.append(matrix)
        self._dim = self._rows.dim
        if self._ann is not None:
            self._ann.add(matrix)
        self._add_records(ids, documents)

    def _add_records(self, ids: Sequence[str | None], documents: Iterable[Document]) -> None:
        for i, doc in zip(ids, documents, strict=True):
            if i is not None:
                self._docs[i] = Document(
                    id=i, page_content=doc.page_content, metadata=dict(doc.metadata)
                )
        self._ids.extend(ids)

    def _drop_row(self, row: int) -> None:
        """Mark a row deleted (its id, when it still points there, goes too)."""
        rid = self._ids.drop(row)
        if rid is not None:
            self._docs.pop(rid, None)
            self._meta_dirty.discard(rid)
        self._dead_sel = self._dead_mask = None

    @serialised
    def delete(self, ids: Sequence[str]) -> None:
        """Mark the rows of these ids deleted (tombstones until the next compaction)."""
        for row in self._ids.rows_of(ids):
            if row is not None:
                self._drop_row(row)  # an id given twice: its row is already deleted

    @serialised
    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Replace the documents' metadata (rows already saved are re-added at the next save)."""
        rows = self._ids.rows_of(ids)
        docs = self._documents_of_rows([r for r in rows if r is not None])
        for i, row, meta in zip(ids, rows, metadatas, strict=True):
            if row is not None:
                old = docs[row]
                self._docs[i] = Document(id=i, page_content=old.page_content, metadata=dict(meta))
                if row < self._saved_rows:
                    self._meta_dirty.add(i)  # its saved segment is immutable: re-added at save

    def _dead_selector(self) -> Any:
        """A selector excluding deleted rows (``None`` when there are none)."""

        if not self._ids.dead_count:
            return None
        if self._dead_sel is None:
            faiss = require("faiss", "faiss-cpu")
            batch = faiss.IDSelectorBatch(self._ids.dead_rows())
            self._dead_sel = (faiss.IDSelectorNot(batch), batch)  # keep the inner one alive
        return self._dead_sel[0]

    def _dead_rows(self) -> np.ndarray | None:
        """A mask of deleted rows over every row (``None`` when there are none)."""
        if not self._ids.dead_count:
            return None
        if self._dead_mask is None or len(self._dead_mask) != len(self._ids):
            self._dead_mask = self._ids.dead_mask()
        return self._dead_mask

    @serialised
    def search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """Approximate search rescored exactly; exact with a filter (over the matching rows,
        never fewer than k) or while no approximate index is built."""
        import numpy as np

        if not self._ids.count:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        if filter is not None:
            # metadata streamed from the records files in blocks: never all held in memory
            matching = [r for r, _, meta in self._live_metadata() if metadata_matches(meta, filter)]
            if not matching:
                return []
            subset = np.sort(np.asarray(matching, dtype=np.int64))
            return self._hits(*self._rows.exact_search(query, min(k, len(subset)), subset=subset))
        wanted = min(k, self._ids.count)
        if self._ann is not None:
            fetch = max(k, 1) * int(self._ann_info.get("refine") or ann.refine_for(self._ann))
            cand = ann.candidates(
                self._ann, query, fetch, self._ann_info.get("params") or {}, self._dead_selector()
            )
            found_rows, found_scores = ann.rescore(self._rows, query, cand[0], k)
            if len(found_rows) >= wanted:
                return self._hits(found_rows, found_scores)
        return self._hits(*self._rows.exact_search(query, wanted, dead=self._dead_rows()))

    @serialised
    def search_many(
        self, vectors: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[list[tuple[Document, float]]]:
        """:meth:`search` for many unit queries: one index search fetches every query's
        candidates (FAISS spreads the batch over its threads), each rescored exactly."""
        import numpy as np

        queries = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        if filter is not None or self._ann is None or not self._ids.count:
            return [self.search(q, k, filter, fetch_k) for q in queries]
        wanted = min(k, self._ids.count)
        refine = int(self._ann_info.get("refine") or ann.refine_for(self._ann))
        found = ann.search_rescored(
            self._ann,
            self._rows,
            queries,
            max(k, 1),
            refine,
            self._ann_info.get("params") or {},
            self._dead_selector(),
        )
        out = []
        for q, (rows, scores) in zip(queries, found, strict=True):
            if len(rows) >= wanted:
                out.append(self._hits(rows, scores))
            else:  # too few candidates survived the deletions: exact, as search does
                out.append(self._hits(*self._rows.exact_search(q, wanted, dead=self._dead_rows())))
        return out

    def _hits(self, rows: Any, scores: Any) -> list[tuple[Document, float]]:
        found = [
            (int(r), float(s))
            for r, s in zip(rows, scores, strict=True)
            if r >= 0 and self._ids.is_live(int(r))
        ]
        docs = self._documents_of_rows([r for r, _ in found])  # one read per records file
        return [(docs[r], s) for r, s in found]

    @serialised
    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored unit vectors of these ids, in order."""
        import numpy as np

        rows = self._ids.rows_of(ids)
        for i, row in zip(ids, rows, strict=True):
            if row is None:
                raise KeyError(i)
        return self._rows.take(np.asarray(rows, dtype=np.int64))

    # -- approximate index ---------------------------------------------------------------
    def _wanted_kind(self) -> str:
        """The index the store should have now: ``"flat"`` or a concrete approximate kind."""
        n, dim = self.count(), self._dim
        if dim is None or n < ann.MIN_ANN_ROWS:
            return "flat"
        planned = self.planned_rows()
        kind = ann.resolve(self._kind, planned, dim, self.memory_budget)
        if self.expected_rows is not None and kind != "flat":
            needed = ann.training_points_needed(ann.factory_string(kind, planned, dim))
            if n < needed:  # the planned lists cannot train yet: exact until they can
                return "flat"
        return kind

    def planned_rows(self) -> int:
        """The rows the index is sized for: the live rows, or :attr:`expected_rows` if more."""
        return max(self.count(), self.expected_rows or 0)

    def check_load(self, incoming: int) -> None:
        """Refuse a bulk load of ``incoming`` more rows after which the planned index still
        could not be trained (checked before any row is written).

        Raises:
            StoreError: The plan's lists need more training vectors than the store will hold.
        """
        total, dim = self.count() + incoming, self._dim
        if self._kind == "flat" or total < ann.MIN_ANN_ROWS:
            return
        planned = max(total, self.expected_rows or 0)
        if ann.ivf_lists(self._kind):  # a factory string: its lists are fixed
            factory = self._kind
        elif dim is None:
            return
        else:
            factory = ann.factory_string(
                ann.resolve(self._kind, planned, dim, self.memory_budget), planned, dim
            )
        needed = ann.training_points_needed(factory)
        if total < needed:
            raise StoreError(
                f"{self.where}: the index planned for {planned:,} rows ({factory}) has "
                f"{ann.ivf_lists(factory):,} inverted lists, which need at least {needed:,} "
                f"training vectors ({ann.MIN_POINTS_PER_LIST} a list); the store holds "
                f"{self.count():,} and the load brings {incoming:,}: load more shards at "
                "once, or plan for fewer rows (expected_rows)"
            )

    def index_outdated(self) -> bool:
        """Whether :meth:`build_index` would build (or drop) the approximate index."""
        target = self._wanted_kind()
        if target == "flat":
            return self._ann is not None
        if self._ann is None or self._ann_info.get("kind") != target:
            return True
        # inverted lists sized for far fewer rows than there are now: rebuilt, resized
        planned = int(self._ann_info.get("planned_rows") or 0)
        sized = self._kind in ("ivf-pq", "auto") and ann.ivf_lists(
            str(self._ann_info.get("factory"))
        )
        return bool(sized and planned and self.planned_rows() > 4 * planned)

    @serialised
    def build_index(self, *, force: bool = False, queries: np.ndarray | None = None) -> bool:
        """Build the approximate index the kind asks for, if it is missing or outgrown.

        ``"auto"`` is decided here (and by :meth:`save`, which calls this) by the live
        vector count and the memory budget. Deleted rows are dropped first (row numbers are
        the index's ids; called outside a save, that copies the live vectors into memory);
        the index is trained on a sample of the vectors, filled, then tuned (:meth:`tune`).

        Returns:
            Whether an index was built or dropped (the next save then rewrites every file).
        """
        target = self._wanted_kind()
        if target == "flat":
            dropped = self._ann is not None
            self._ann, self._ann_info = None, {}
            return dropped
        if not force and not self.index_outdated():
            return False
        self._compact_rows()
        dim, n = int(self._dim or 0), self.count()
        planned = self.planned_rows()
        plans = ann.plans_for(
            self._kind if self._kind == "auto" else target, planned, dim, self.memory_budget
        )
        held = None if queries is not None else ann.tuning_rows(len(self._ids), None)
        tried: list[dict[str, Any]] = []
        index: Any = None
        tuning: dict[str, Any] = {}
        self._ann, self._ann_info = None, {}
        for factory in plans:  # the next plan only while the target is missed
            started = time.perf_counter()
            try:
                index = ann.build(factory, self._rows, exclude=held)
            except ValueError as exc:
                raise StoreError(f"{self.where}: {exc}") from exc
            built = time.perf_counter() - started
            tuning = ann.tune(
                index, self._rows, queries=queries, target=self.recall_target, held_out=held
            )
            tried.append(
                {
                    "factory": factory,
                    "recall": tuning["recall"],
                    "params": tuning["params"],
                    "refine": tuning["refine"],
                    "build_seconds": round(built, 3),
                }
            )
            if tuning["reached"] or factory == plans[-1]:
                break
            index = None  # freed before the next plan is built
        if not tuning["reached"]:
            raise StoreError(
                f"{self.where}: no index plan reaches recall@10 {self.recall_target} on "
                f"{tuning['tuning_queries']} held-out queries within the memory budget "
                f"({self.memory_budget or ann.default_memory_budget():,} bytes); tried "
                + "; ".join(
                    f"{t['factory']}: {t['recall']} at {t['params']} refine {t['refine']}"
                    for t in tried
                )
                + ". Lower recall_target, raise memory_budget, or use index='flat' (exact); "
                "until then the store searches exactly"
            )
        self._ann = index
        self._ann_info = {
            "kind": target,
            "factory": factory,
            "planned_rows": planned,
            "build_seconds": tried[-1]["build_seconds"],
            "memory_bytes": ann.estimate_factory_memory(factory, n, dim),
            **tuning,
            "plans_tried": tried,
        }
        return True

    @serialised
    def tune(self, queries: np.ndarray | None = None) -> dict[str, Any]:
        """Re-measure recall@10 and pick ``efSearch`` / ``nprobe`` for :attr:`recall_target`.

        Args:
            queries: Held-out query vectors (unit rows); default: 200 sampled stored vectors.

        Returns:
            The index description the manifest records (see :attr:`index_info`).
        """
        if self._ann is not None:
            self._ann_info.update(
                ann.tune(
                    self._ann,
                    self._rows,
                    dead=self._dead_rows(),
                    queries=queries,
                    target=self.recall_target,
                )
            )
            if not self._ann_info["reached"]:
                warnings.warn(
                    f"{self.where}: recall@10 {self._ann_info['recall']} on held-out queries "
                    f"is below the target {self.recall_target} ({self._ann_info['factory']}); "
                    "rebuild with build_index(force=True) to try larger plans",
                    stacklevel=3,
                )
        return self.index_info

    def _compact_rows(self) -> bool:
        """Drop deleted rows, keeping the live vectors in memory (renumbering the rows and
        dropping the approximate index: the caller rebuilds it); whether any were dropped."""
        if not self._ids.dead_count:
            return False
        live = self._ids.live_rows()
        vectors = self._rows.take(live)
        ids = self._ids.ids_of(live)
        by_row = self._documents_of_rows(int(r) for r in live)  # held in memory until saved
        docs = [by_row[int(r)] for r in live]
        self._reset()
        if ids:
            self._append(ids, vectors, docs)
        return True

    def _load_existing(self, folder: Path) -> None:
        for attempt in range(_LOAD_TRIES):
            manifest = read_manifest(folder)
            try:
                self._load_generation(folder, manifest)
                return
            except StoreError:
                with contextlib.suppress(StoreError):
                    if read_manifest(folder) != manifest and attempt + 1 < _LOAD_TRIES:
                        continue  # a writer replaced the store while we read it: retry
                raise
        raise StoreError(f"FAISS store {folder}: changing too fast to load")  # pragma: no cover

    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        stored = manifest.get("model") or {}
        if self._checked is not None and stored != self._checked and self._model_record:
            # a writer replaced the store since the store checked its model: check again
            check_model_record(stored, self._model_record(), f"FAISS store {folder}")
        if manifest.get("dim") is not None:
            self._dim = int(manifest["dim"])
        self._reset()
        for vectors, records in files.read_segments(folder, manifest, self._dim):
            # the ids stream in packed; a placeholder row (no id) is a deleted row
            self._ids.add_saved(records.ids() if len(records) else [])
            self._rows.add_part(vectors)
            self._saved_docs.add_part(records)  # documents stay on disk, read for results
        self._dim = self._rows.dim if self._rows.dim is not None else self._dim
        n_rows = len(self._ids)
        for row in files.read_deletions(folder, manifest.get("deletions")):
            if not 0 <= row < n_rows:
                raise StoreError(f"FAISS store {folder}: deleted row {row} out of range")
            self._drop_row(row)
        count = self._ids.count
        if count != self._ids.count_live() or int(manifest.get("count", 0)) != count:
            raise StoreError(f"FAISS store {folder}: inconsistent rows (torn store)")
        self._load_index(folder, manifest.get("index") or {})
        self._saved = {
            key: manifest.get(key) for key in ("vectors", "documents", "segments", "deletions")
        }
        self._saved["segments"] = list(self._saved["segments"] or [])
        self._saved_rows, self._saved_dead = n_rows, self._ids.dead_count
        self._generation = int(manifest.get("generation", 0))

    def _load_index(self, folder: Path, entry: dict[str, Any]) -> None:
        """Settings not given to the constructor come from the manifest; a saved index of the
        kind asked for is deserialized (rows saved since it was written are added)."""
        if not self._given["requested"]:
            self._kind = str(entry.get("requested", "flat"))
        if not self._given["recall_target"]:
            self.recall_target = float(entry.get("recall_target", DEFAULT_RECALL_TARGET))
        if not self._given["memory_budget"]:
            budget = entry.get("memory_budget")
            self.memory_budget = None if budget is None else int(budget)
        if not self._given["expected_rows"] and entry.get("expected_rows") is not None:
            self.expected_rows = int(entry["expected_rows"])
        if not entry.get("file") or self._kind != entry.get("requested", "flat"):
            return  # exact, or another kind asked for: built at the next save
        index = files.read_index(folder, entry)
        n_rows = len(self._ids)
        if (
            int(index.ntotal) != int(entry.get("rows", -1))
            or index.ntotal > n_rows
            or (index.d != self._dim)
        ):
            raise StoreError(f"FAISS store {folder}: index {entry['file']} does not match the rows")
        for _, block in self._rows.blocks(int(index.ntotal)):  # rows saved since: added now
            index.add(block)
        self._ann = index
        self._ann_info = {k: v for k, v in entry.items() if k not in ("file", "sha256", "rows")}
        self._ann_saved = dict(entry)
        if self._ann_info.get("recall_target") != self.recall_target:
            self.tune()  # another target asked for: re-measured now, recorded at the next save

    # -- locking -------------------------------------------------------------------------
    def lock_dir(self) -> Path | None:
        """The store's folder (``None`` in memory)."""
        return self.path

    def on_locked(self) -> None:
        """Refuse to write over a generation another writer saved since this one loaded."""
        if self.path is not None:
            self._check_generation(self.path)

    def _check_generation(self, folder: Path) -> None:
        current: int | None = None
        with contextlib.suppress(StoreError):
            current = int(read_manifest(folder).get("generation", 0))
        if current is not None and self._generation is not None and current != self._generation:
            raise StoreError(
                f"FAISS store {folder} was saved by another writer (generation {current}) since "
                f"this one was opened (generation {self._generation}); reopen it and redo the "
                "changes"
            )
        if current is not None and self._generation is None:
            raise StoreError(
                f"FAISS store {folder} was created by another writer since this one was "
                "opened; reopen it and redo the changes"
            )

    # -- persistence ---------------------------------------------------------------------
    def move_to(self, path: Path) -> None:
        """Make ``path`` the store's folder: the next save writes every row there (replacing
        a store it holds); nothing is read from it. The caller releases the old folder's lock."""
        self.path = path
        self._generation = None
        self._saved, self._ann_saved = None, None  # nothing of ours there to build on
        with contextlib.suppress(StoreError):  # saving to another folder replaces it
            self._generation = int(read_manifest(path).get("generation", 0))

    @serialised
    def save(self) -> Path:
        """Write the store to its folder atomically (the writer lock held); returns the folder.

        Only the rows added since the last save are written (a new segment), plus the
        deleted row numbers and, when rebuilt or lagging, the index; everything is rewritten
        when compaction is due (see the store's docs). Afterwards every saved row is read
        from its memory-mapped segment file; none is held in memory.

        Raises:
            StoreError: No folder, or the folder was saved by another writer meanwhile.
        """
        if self.path is None:
            raise StoreError("this FAISS store has no folder: pass save(path)")
        folder = self.path
        self._check_generation(folder)
        generation = (self._generation or 0) + 1
        token = f"{generation:08d}-{uuid.uuid4().hex[:8]}"
        new_segment: Segment | None = None
        new_records: RecordFile | None = None
        if self._saved is None or self.index_outdated() or self._compaction_due():
            saved = self._write_base(folder, token)
            if self.index_outdated():
                self.build_index(force=True)
        else:
            saved, new_segment, new_records = self._write_increment(folder, token)
        manifest = self._manifest(generation, saved, self._index_entry(folder, token))
        write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
        self._generation = generation
        self._saved, self._saved_rows = saved, len(self._ids)
        self._saved_dead = self._ids.dead_count
        self._ann_saved = manifest["index"] if manifest["index"].get("file") else None
        if new_segment is not None:
            self._rows.saved_up_to(new_segment)  # the new rows now live in their segment file
        if new_records is not None:
            self._documents_saved(new_records)
        self._ids.freeze()  # the saved rows' ids are packed from now on
        files.remove_unreferenced(folder, manifest)  # no map of ours points at these
        return folder

    def _manifest(
        self, generation: int, saved: dict[str, Any], index_entry: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "generation": generation,
            "model": model_record_with_dim(
                self._model_record() if self._model_record else {}, self._dim
            ),
            "count": self.count(),
            "dim": self._dim,
            "metric": "inner_product",
            "rows": len(self._ids),
            "vectors": saved["vectors"],
            "documents": saved["documents"],
            "segments": saved["segments"],
            "deletions": saved["deletions"],
            "index": index_entry,
        }

    def _compaction_due(self) -> bool:
        """Whether this save should rewrite everything into one segment."""
        n_rows = len(self._ids)
        segments = len((self._saved or {}).get("segments") or [])
        return (
            self._saved_docs.in_memory  # a format-2 store: rewritten in the current format
            or self.count() * int(self._dim or 0) * 4 <= self.full_save_below_bytes
            or self._ids.dead_count > self.compact_deleted_fraction * max(n_rows, 1)
            or segments + (n_rows > self._saved_rows) > self.max_segments
        )

    def _write_base(self, folder: Path, token: str) -> dict[str, Any]:
        """Stream the live rows into one new base segment, then read them from it.

        Deleted rows are dropped (the rows renumbered, the approximate index dropped for a
        rebuild). The store changes only once both files are written; until the manifest
        names them, ``_saved`` is ``None`` so that a failed save is redone in full.
        """

        self._saved = None
        dim = int(self._dim or 0)
        live = self._ids.live_rows() if self._ids.dead_count else None
        n = len(self._ids) if live is None else len(live)
        step = max(1, (64 << 20) // (4 * max(dim, 1)))
        if live is None:
            blocks: Iterable[np.ndarray] = (b for _, b in self._rows.blocks())
        else:
            blocks = (self._rows.take(live[s : s + step]) for s in range(0, n, step))
        vectors = files.write_vectors(folder, token, blocks, n, dim)
        documents = files.write_documents(
            folder, token, self._ordered_records(0, skip_dead=live is not None), n
        )
        mapped = map_segment(folder / vectors["file"], dim)
        records = RecordFile(folder / documents["file"])
        if live is not None:
            ids = self._ids.select(live)  # the live rows' ids, renumbered
            self._reset()
            self._ids = ids
        else:
            self._saved_docs.close()  # old files may be deleted once the manifest switches
            self._saved_docs = SavedRecords()
        self._saved_docs.add_part(records)  # every document is now read from the new file
        self._docs.clear()
        self._rows.replace_all(mapped)  # old maps dropped before their files are deleted
        self._meta_dirty.clear()
        return {"vectors": vectors, "documents": documents, "segments": [], "deletions": None}

    def _write_increment(
        self, folder: Path, token: str
    ) -> tuple[dict[str, Any], Segment | None, RecordFile | None]:
        """Write the rows added since the last save as a segment, and the deletions if they
        changed; returns the entries and the new segment's vectors map and records (used
        once saved)."""
        self._readd_changed_metadata()
        assert self._saved is not None
        saved = {**self._saved, "segments": list(self._saved["segments"])}
        start, stop = self._saved_rows, len(self._ids)
        mapped, records = None, None
        if stop > start:
            dim = int(self._dim or 0)
            blocks = (b for _, b in self._rows.blocks(start, stop))
            vectors = files.write_vectors(folder, token, blocks, stop - start, dim)
            documents = files.write_documents(
                folder, token, self._ordered_records(start, skip_dead=False), stop - start
            )
            saved["segments"].append(
                {"rows": stop - start, "vectors": vectors, "documents": documents}
            )
            mapped = map_segment(folder / vectors["file"], dim)
            records = RecordFile(folder / documents["file"])
        if self._ids.dead_count != self._saved_dead:
            saved["deletions"] = files.write_deletions(
                folder, token, self._ids.dead_rows().tolist()
            )
        return saved, mapped, records

    def _ordered_records(self, start: int, *, skip_dead: bool) -> Iterator[dict[str, Any]]:
        """The stored record of every row from ``start`` on, in row order (saved rows
        streamed from their records files, changed metadata from memory); deleted rows
        skipped or, to keep a segment's rows aligned, written as placeholders."""
        for row, rec in self._saved_docs.records(start):
            # a saved row keeps the id its record names until it is deleted
            rid = rec.get("id") if self._ids.is_live(row) else None
            if rid is None and skip_dead:
                continue
            if rid is None:  # a placeholder keeps the segment's rows aligned
                yield record_of(None, None)
            elif rid in self._docs:  # its metadata changed since it was saved
                yield record_of(self._docs[rid], rid)
            else:
                yield rec
        for row in range(max(start, len(self._saved_docs)), len(self._ids)):
            rid = self._ids[row]
            if rid is None and skip_dead:
                continue
            yield record_of(None if rid is None else self._docs[rid], rid)

    def _documents_saved(self, records: RecordFile) -> None:
        """The unsaved rows were just written as ``records``: their documents are read from
        there now, no longer held in memory."""
        start = len(self._saved_docs)
        self._saved_docs.add_part(records)
        for rid in self._ids.ids_of(range(start, start + len(records))):
            if rid is not None:
                self._docs.pop(rid, None)

    def _readd_changed_metadata(self) -> None:
        """Rows saved before whose metadata changed: re-added (old row deleted) for this save."""
        import numpy as np

        dirty = list(self._meta_dirty)
        rows = self._ids.rows_of(dirty)
        changed = [
            (i, r)
            for i, r in zip(dirty, rows, strict=True)
            if r is not None and r < self._saved_rows
        ]
        self._meta_dirty.clear()
        if changed:
            vectors = self._rows.take(np.asarray([r for _, r in changed], np.int64))
            changed_ids = [i for i, _ in changed]
            docs = [self._docs[i] for i in changed_ids]
            self.delete(changed_ids)
            self._append(changed_ids, vectors, docs)

    def _index_entry(self, folder: Path, token: str) -> dict[str, Any]:
        """The manifest's ``index``: written anew when rebuilt or lagging, else the saved one."""
        settings = {
            "requested": self._kind,
            "recall_target": self.recall_target,
            "memory_budget": self.memory_budget,
            "expected_rows": self.expected_rows,
        }
        n_rows = len(self._ids)
        if self._ann is None:
            return {
                "kind": "flat",
                "factory": "Flat",
                "file": None,
                "recall": 1.0,
                "memory_bytes": n_rows * int(self._dim or 0) * 4,
                **settings,
            }
        saved = self._ann_saved
        if saved is not None and saved.get("file") and (folder / saved["file"]).is_file():
            lag = n_rows - int(saved.get("rows", 0))
            if lag <= self.index_lag_fraction * max(int(saved.get("rows", 0)), 1):
                return {**saved, **self._ann_info, **settings}
            self.tune()  # the index grew by more than the lag allowed: re-measure
        written = files.write_index(folder, token, self._ann)
        self._ann_info["memory_bytes"] = written["memory_bytes"]
        return {**self._ann_info, **written, **settings}

    def has_unsaved_changes(self) -> bool:
        """Whether rows, deletions or metadata changed since the last save (or the load)."""
        return (
            len(self._ids) != self._saved_rows
            or self._ids.dead_count != self._saved_dead
            or bool(self._meta_dirty)
        )


def _copy(doc: Document) -> Document:
    """A document callers can change without changing the store."""
    return Document(id=doc.id, page_content=doc.page_content, metadata=dict(doc.metadata))
