"""The in-memory side of the FAISS image store: rows, tombstones, search, approximate index.

:class:`FAISSCore` holds what a :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore`
knows about its rows (id, document, deleted or not), their vectors
(:class:`~langchain_image_embeddings.vectorstores.faiss._rows.RowVectors`: saved segments
memory-mapped, unsaved rows in RAM) and its approximate index, and implements the
``ImageVectorStore`` primitives over them. Saving and loading are
:mod:`~langchain_image_embeddings.vectorstores.faiss._persist`; the public class and its
constructors are :mod:`~langchain_image_embeddings.vectorstores.faiss`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from langchain_core.documents import Document

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from langchain_image_embeddings.vectorstores.faiss import _index as ann
from langchain_image_embeddings.vectorstores.faiss._rows import RowVectors
from langchain_image_embeddings.vectorstores.filters import metadata_matches

if TYPE_CHECKING:
    import numpy as np

_P = ParamSpec("_P")
_R = TypeVar("_R")


def serialised(method: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """Run ``method`` holding the store's mutex: rows, ids and documents change together."""

    @functools.wraps(method)
    def locked(self: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._mutex:
            return method(self, *args, **kwargs)

    return locked


class FAISSCore(ImageVectorStore):
    """Rows, tombstones, exact and approximate search of a FAISS image store (a base class:
    use :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore`).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore(embeddings)      # a FAISSCore with persistence
            store.build_index()                      # FAISSCore: builds / tunes the index
    """

    _dim: int | None
    _rows: RowVectors  # every row's vector (deleted too): saved segments mapped
    _kind: str  # the index asked for (flat, hnsw, ivf-pq, auto or a factory string)
    recall_target: float
    memory_budget: int | None

    def _reset(self) -> None:
        if hasattr(self, "_rows"):
            self._rows.close()  # its segment files may be deleted next (Windows: not if open)
        self._rows = RowVectors(self._dim)
        self._ids: list[str | None] = []  # row -> id (None: deleted or replaced)
        self._row: dict[str, int] = {}  # id -> row
        self._docs: dict[str, Document] = {}
        self._dead: set[int] = set()
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

    def __len__(self) -> int:
        return len(self._row)

    @serialised
    def records(self) -> dict[str, dict[str, Any]]:
        return {
            i: dict(self._docs[i].metadata)
            for i in self._ids
            if i is not None and self._row.get(i) is not None
        }

    @serialised
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [_copy(self._docs[i]) for i in ids if i in self._docs]

    @serialised
    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        return {i for i in ids if i in self._docs}

    @serialised
    def _write(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        present = list(self.existing_ids(ids))
        if present:
            self._delete_ids(present)
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
                self._row[i] = len(self._ids)
                self._docs[i] = Document(
                    id=i, page_content=doc.page_content, metadata=dict(doc.metadata)
                )
            self._ids.append(i)

    def _drop_row(self, row: int) -> None:
        """Mark a row deleted (its id, when it still points there, goes too)."""
        rid = self._ids[row]
        if rid is not None and self._row.get(rid) == row:
            del self._row[rid]
            self._docs.pop(rid, None)
            self._meta_dirty.discard(rid)
        self._ids[row] = None
        self._dead.add(row)
        self._dead_sel = self._dead_mask = None

    @serialised
    def _delete_ids(self, ids: Sequence[str]) -> None:
        for i in ids:
            row = self._row.get(i)
            if row is not None:
                self._drop_row(row)

    @serialised
    def _update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        for i, meta in zip(ids, metadatas, strict=True):
            if i in self._docs:
                old = self._docs[i]
                self._docs[i] = Document(id=i, page_content=old.page_content, metadata=dict(meta))
                if self._row[i] < self._saved_rows:
                    self._meta_dirty.add(i)  # its saved segment is immutable: re-added at save

    def _dead_selector(self) -> Any:
        """A selector excluding deleted rows (``None`` when there are none)."""
        import numpy as np

        if not self._dead:
            return None
        if self._dead_sel is None:
            faiss = require("faiss", "faiss-cpu")
            batch = faiss.IDSelectorBatch(np.fromiter(self._dead, np.int64, len(self._dead)))
            self._dead_sel = (faiss.IDSelectorNot(batch), batch)  # keep the inner one alive
        return self._dead_sel[0]

    def _dead_rows(self) -> np.ndarray | None:
        """A mask of deleted rows over every row (``None`` when there are none)."""
        import numpy as np

        if not self._dead:
            return None
        if self._dead_mask is None or len(self._dead_mask) != len(self._ids):
            self._dead_mask = np.zeros(len(self._ids), bool)
            self._dead_mask[list(self._dead)] = True
        return self._dead_mask

    @serialised
    def _search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """Approximate search rescored exactly; exact with a filter (over the matching rows,
        never fewer than k) or while no approximate index is built."""
        import numpy as np

        if not self._row:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        if filter is not None:
            matching = [
                r
                for r, i in enumerate(self._ids)
                if i is not None and metadata_matches(self._docs[i].metadata, filter)
            ]
            if not matching:
                return []
            subset = np.asarray(matching, dtype=np.int64)
            return self._hits(*self._rows.exact_search(query, min(k, len(subset)), subset=subset))
        wanted = min(k, len(self._row))
        if self._ann is not None:
            fetch = max(k, 1) * int(self._ann_info.get("refine") or ann.refine_for(self._ann))
            cand = ann.candidates(
                self._ann, query, fetch, self._ann_info.get("params") or {}, self._dead_selector()
            )
            found_rows, found_scores = ann.rescore(self._rows, query, cand[0], k)
            if len(found_rows) >= wanted:
                return self._hits(found_rows, found_scores)
        return self._hits(*self._rows.exact_search(query, wanted, dead=self._dead_rows()))

    def _hits(self, rows: Any, scores: Any) -> list[tuple[Document, float]]:
        out = []
        for r, s in zip(rows, scores, strict=True):
            rid = self._ids[int(r)] if r >= 0 else None
            if rid is not None:
                out.append((_copy(self._docs[rid]), float(s)))
        return out

    @serialised
    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
        import numpy as np

        return self._rows.take(np.asarray([self._row[i] for i in ids], dtype=np.int64))

    # -- approximate index ---------------------------------------------------------------
    def _wanted_kind(self) -> str:
        """The index the store should have now: ``"flat"`` or a concrete approximate kind."""
        n, dim = len(self), self._dim
        if dim is None or n < ann.MIN_ANN_ROWS:
            return "flat"
        return ann.resolve(self._kind, n, dim, self.memory_budget)

    def _index_outdated(self) -> bool:
        """Whether :meth:`build_index` would build (or drop) the approximate index."""
        target = self._wanted_kind()
        if target == "flat":
            return self._ann is not None
        return self._ann is None or self._ann_info.get("kind") != target

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
        if not force and not self._index_outdated():
            return False
        self._compact_rows()
        dim = int(self._dim or 0)
        factory = ann.factory_string(target, len(self), dim)
        started = time.perf_counter()
        self._ann = ann.build(factory, self._rows)
        self._ann_info = {
            "kind": target,
            "factory": factory,
            "build_seconds": round(time.perf_counter() - started, 3),
            "memory_bytes": ann.estimate_memory(
                target if target in ann.KINDS else "flat", len(self), dim
            ),
        }
        self.tune(queries)
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
        return self.index_info

    def _compact_rows(self) -> bool:
        """Drop deleted rows, keeping the live vectors in memory (renumbering the rows and
        dropping the approximate index: the caller rebuilds it); whether any were dropped."""
        import numpy as np

        if not self._dead:
            return False
        live = np.asarray([r for r, i in enumerate(self._ids) if i is not None], np.int64)
        vectors = self._rows.take(live)
        ids = [self._ids[r] for r in live]
        docs = [self._docs[str(i)] for i in ids]
        self._reset()
        if ids:
            self._append(ids, vectors, docs)
        return True


def _copy(doc: Document) -> Document:
    """A document callers can change without changing the store."""
    return Document(id=doc.id, page_content=doc.page_content, metadata=dict(doc.metadata))
