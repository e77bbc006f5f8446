"""FAISS image store: exact or approximate FAISS indexes, saved incrementally without pickle.

On disk a store is a folder with ``manifest.json`` (format version 2: generation, model
record, counts, and the name and SHA-256 of every data file), a **base segment**
(``vectors-<token>.npy``, ``float32`` unit vectors one row per record, and
``documents-<token>.json``: ids, URIs, metadata in row order), the **segments** appended by
later saves (same two files each, holding only the rows added since the save before), a
``deletions-<token>.npy`` file (``int64`` row numbers of deleted or replaced rows) and, for
an approximate index, ``index-<token>.faiss`` (``faiss.serialize_index`` bytes, never a
pickle). Row numbers run through the base and then the segments in manifest order.

A save writes only what changed: a new segment with the rows added since the last save, the
deletions file when rows were deleted, the index file when it was rebuilt or lags far behind,
then the manifest, each through the package's one atomic write
(:mod:`langchain_image_embeddings._atomic`: temporary file, fsync, rename, folder fsync); it
never modifies a file the current manifest names. Compaction (everything rewritten into one
base segment, deleted rows dropped) runs when deleted rows pass a fifth of the rows, when
segments pile up, or when the store is small enough for a full rewrite to cost nothing. Only
after the manifest switch are unreferenced files (older generations, leftovers of killed
saves) deleted. A kill at any moment leaves either the old or the new store, never a torn
one; a store whose files are missing or fail their checksum is refused at open.

Writers take an exclusive lock on the folder (see
:mod:`langchain_image_embeddings.vectorstores.locking`); a store object also remembers
the generation it loaded and refuses to save over a newer one written meanwhile. Version 1
stores (one vectors file, one documents file) still open; the next save writes version 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings._atomic import sha256_file, write_atomic, write_atomic_with
from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores import faiss_index as ann
from langchain_image_embeddings.vectorstores.base import (
    AddResult,
    ImageVectorStore,
    bad_vector_rows,
    content_id,
    model_record,
)
from langchain_image_embeddings.vectorstores.filters import metadata_matches
from langchain_image_embeddings.vectorstores.locking import StoreLock

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.embeddings import Embeddings

    from langchain_image_embeddings.embeddings import ImageEmbeddings

FORMAT = "langchain-image-embeddings/faiss"
FORMAT_VERSION = 2
#: Versions this code reads (1: one vectors file and one documents file, exact index).
READ_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
_DATA_FILE = re.compile(
    r"^((vectors|deletions)-.*\.npy|documents-.*\.json|index-.*\.faiss"
    r"|(vectors-|documents-|deletions-|index-|manifest\.json).*\.tmp)$"
)
_LOAD_TRIES = 5


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a store's manifest.

    Raises:
        StoreError: No store at ``path``, or a manifest that is not ours.
    """
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StoreError(f"no FAISS image store at {path} (missing {MANIFEST})") from exc
    except (OSError, ValueError) as exc:
        raise StoreError(f"unreadable manifest {file}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{file} is not a {FORMAT} manifest")
    if manifest.get("version") not in READ_VERSIONS:
        raise StoreError(f"{file}: unsupported format version {manifest.get('version')!r}")
    return manifest


class FAISSImageStore(ImageVectorStore):
    """Images (or texts) in a FAISS index: a LangChain ``VectorStore`` saved without pickle.

    Inner product on unit vectors (cosine); scores are relevance in ``[0, 1]``. The index is
    exact (``"flat"``) or approximate (``"hnsw"``, ``"ivf-pq"``, a ``faiss.index_factory``
    string, or ``"auto"``: flat while small, HNSW next, IVF-PQ beyond the memory budget);
    approximate candidates are rescored exactly with the stored vectors, and the search
    parameters are tuned to a recall target that the manifest records.

    Setup:
        .. code-block:: bash

            pip install "langchain-image-embeddings[faiss,timm]"

    Key init args:
        embeddings: Embeddings
            The model: an ``ImageEmbeddings`` (documents are image URIs, ids are content
            ids, the model fingerprint is recorded and checked on reopen) or any LangChain
            ``Embeddings`` (an ordinary text store).
        path: str | Path | None
            The store's folder. A folder that already holds a store is opened (its records
            loaded, its model checked); ``None``: in memory until :meth:`save` gets a path.
        index: str | None
            ``"flat"`` (default for a new store), ``"hnsw"``, ``"ivf-pq"``, ``"auto"`` or a
            ``faiss.index_factory`` string; ``None`` keeps a saved store's kind. An
            approximate index is built (trained on a sample, then filled) at :meth:`save`
            or :meth:`build_index` once the store holds 1,000 vectors; exact search before.
        recall_target: float
            The recall@10 against exact search that ``efSearch`` / ``nprobe`` are tuned to.
        memory_budget: int | None
            Bytes ``"auto"`` may give an HNSW index (default: half the machine's memory).

    Build, search, save and reopen:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            embeddings = ImageEmbeddings("timm:efficientnet_lite0")
            store = FAISSImageStore(embeddings, "index", index="auto")  # new or existing
            store.add_documents(ImageDirectoryLoader("photos").load())
            store.save()
            docs = store.similarity_search_by_image("photos/chelsea.jpg", k=3)

            store = FAISSImageStore.load("index")                  # the model comes from the manifest
            retriever = store.as_retriever(search_kwargs={"k": 3})
    """

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
        embeddings: Embeddings,
        path: str | os.PathLike[str] | None = None,
        *,
        index: str | None = None,
        recall_target: float = 0.95,
        memory_budget: int | None = None,
    ) -> None:
        require("faiss", "faiss-cpu")
        super().__init__(embeddings)
        self.path = None if path is None else Path(path)
        self._flat: Any = None  # faiss.IndexFlatIP: every row's unit vector (deleted too)
        self._ids: list[str | None] = []  # row -> id (None: deleted or replaced)
        self._row: dict[str, int] = {}  # id -> row
        self._docs: dict[str, Document] = {}
        self._dead: set[int] = set()
        self._dead_sel: Any = None  # cached selector excluding dead rows
        self._dim: int | None = None
        self._kind = ann.check_kind(index) if index is not None else "flat"
        self._kind_given = index is not None
        self.recall_target = float(recall_target)
        self.memory_budget = memory_budget
        self._ann: Any = None  # approximate index over rows 0..n-1 (ids = rows), if built
        self._ann_info: dict[str, Any] = {}  # factory, tuning: what the manifest records
        self._ann_saved: dict[str, Any] | None = None  # the index entry of the last save
        self._saved: dict[str, Any] | None = None  # the data-file entries of the last save
        self._saved_rows = 0  # rows held by the segments of the last save
        self._saved_dead: int = 0
        self._meta_dirty: set[str] = set()  # metadata changed on rows already saved
        self._generation: int | None = None  # the generation loaded or last saved
        self._lock: StoreLock | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        #: Rows left out by :meth:`import_langchain_faiss` (NaN/inf or zero vectors).
        self.skipped_rows: list[int] = []
        if self._image_embeddings is not None:
            self._dim = int(self._image_embeddings.dim)
        if self.path is not None:
            if (self.path / MANIFEST).exists():
                self._load_existing(self.path)
            else:
                _refuse_stock_folder(self.path)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        embeddings: Embeddings | None = None,
        **kwargs: Any,
    ) -> FAISSImageStore:
        """Open a saved store; with no ``embeddings``, the recorded image model is created.

        Loading takes no lock: a writer replacing the store meanwhile is detected (its
        manifest changed) and the load is retried on the new generation. A saved
        approximate index is deserialized, not retrained. ``kwargs`` go to the constructor
        (``index=``, ``recall_target=``, ``memory_budget=``).

        Raises:
            StoreError: Missing, torn or corrupt files.
            ModelMismatchError: ``embeddings`` is not the model that wrote the store.
        """
        if not (Path(path) / MANIFEST).exists():
            _refuse_stock_folder(Path(path))
        manifest = read_manifest(path)
        if embeddings is None:
            embeddings = _recorded_image_model(Path(path), manifest)
        return cls(embeddings, path, **kwargs)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        embeddings: Embeddings | None = None,
        **kwargs: Any,
    ) -> FAISSImageStore:
        """Load the store at ``path`` if there is one, else create an empty one there.

        Raises:
            StoreError: ``path`` is a stock LangChain FAISS folder (see
                :meth:`import_langchain_faiss`), or there is no store and no model.
        """
        if (Path(path) / MANIFEST).exists():
            return cls.load(path, embeddings, **kwargs)
        _refuse_stock_folder(Path(path))
        if embeddings is None:
            raise StoreError(f"no FAISS image store at {path}: give a model to create one")
        return cls(embeddings, path, **kwargs)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> FAISSImageStore:
        """A store holding ``texts`` (image URIs for an image model); saved if ``path`` is given."""
        store = cls(embedding, path)
        store.add_texts(texts, metadatas, ids=ids)
        if path is not None:
            store.save()
        return store

    @classmethod
    def from_images(
        cls,
        images: Iterable[Document | str | os.PathLike[str]],
        embeddings: ImageEmbeddings,
        path: str | os.PathLike[str] | None = None,
    ) -> FAISSImageStore:
        """Build a store from image documents, paths or URIs (saved if ``path`` is given)."""
        store = cls(embeddings, path)
        store.last_add = store.add_images(images)
        if path is not None:
            store.save()
        return store

    last_add: AddResult | None = None

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

    def _reset(self) -> None:
        self._flat, self._ids, self._row, self._docs = None, [], {}, {}
        self._dead, self._dead_sel, self._meta_dirty = set(), None, set()
        self._ann, self._ann_info, self._ann_saved = None, {}, None
        self._saved, self._saved_rows, self._saved_dead = None, 0, 0

    @staticmethod
    def _checked_file(folder: Path, entry: Any, what: str) -> Path:
        entry = entry if isinstance(entry, dict) else {}
        file = folder / str(entry.get("file", ""))
        if not entry.get("file") or not file.is_file():
            raise StoreError(f"FAISS store {folder}: {what} file {file.name!r} is missing")
        if sha256_file(file) != entry.get("sha256"):
            raise StoreError(f"FAISS store {folder}: {file.name} is corrupt (checksum mismatch)")
        return file

    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        import numpy as np

        self._check_model(manifest.get("model") or {}, f"FAISS store {folder}")
        dim = manifest.get("dim")
        segments = [manifest, *(manifest.get("segments") or [])]
        self._reset()
        if dim is not None:
            self._dim = int(dim)
        dead: list[int] = []
        for segment in segments:
            vec_file = self._checked_file(folder, segment.get("vectors"), "vectors")
            doc_file = self._checked_file(folder, segment.get("documents"), "documents")
            try:
                vectors = np.load(vec_file, allow_pickle=False)
                records = json.loads(doc_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise StoreError(f"FAISS store {folder}: unreadable data: {exc}") from exc
            if (
                vectors.ndim != 2
                or vectors.shape[0] != len(records)
                or (self._dim is not None and vectors.shape[1] != self._dim)
            ):
                raise StoreError(
                    f"FAISS store {folder}: {vectors.shape} vectors for {len(records)} documents"
                )
            if not len(records):
                continue
            start = len(self._ids)
            dead.extend(start + r for r, rec in enumerate(records) if rec.get("id") is None)
            self._append(
                [rec.get("id") for rec in records],
                vectors.astype(np.float32, copy=False),
                [
                    Document(
                        id=rec.get("id"),
                        page_content=rec.get("page_content", ""),
                        metadata=rec.get("metadata") or {},
                    )
                    for rec in records
                ],
                to_index=False,
            )
        if manifest.get("deletions"):
            file = self._checked_file(folder, manifest["deletions"], "deletions")
            try:
                dead.extend(int(r) for r in np.load(file, allow_pickle=False))
            except (OSError, ValueError) as exc:
                raise StoreError(f"FAISS store {folder}: unreadable data: {exc}") from exc
        n_rows = len(self._ids)
        for row in dead:
            if not 0 <= row < n_rows:
                raise StoreError(f"FAISS store {folder}: deleted row {row} out of range")
            self._drop_row(row)
        if len(self._row) != n_rows - len(self._dead) or int(manifest.get("count", 0)) != len(
            self._row
        ):
            raise StoreError(f"FAISS store {folder}: inconsistent rows (torn store)")
        self._load_index(folder, manifest.get("index") or {})
        self._saved = {
            key: manifest.get(key) for key in ("vectors", "documents", "segments", "deletions")
        }
        self._saved["segments"] = list(self._saved["segments"] or [])
        self._saved_rows, self._saved_dead = n_rows, len(self._dead)
        self._generation = int(manifest.get("generation", 0))

    def _load_index(self, folder: Path, entry: dict[str, Any]) -> None:
        import numpy as np

        requested = str(entry.get("requested", "flat"))
        if not self._kind_given:
            self._kind = requested
        if not entry.get("file") or self._kind != requested:
            return  # exact, or another kind asked for: built at the next save
        faiss = require("faiss", "faiss-cpu")
        file = self._checked_file(folder, entry, "index")
        try:
            index = faiss.deserialize_index(np.fromfile(file, dtype=np.uint8))
        except (OSError, RuntimeError) as exc:
            raise StoreError(f"FAISS store {folder}: unreadable index {file.name}: {exc}") from exc
        n_rows = len(self._ids)
        if (
            int(index.ntotal) != int(entry.get("rows", -1))
            or index.ntotal > n_rows
            or (index.d != self._dim)
        ):
            raise StoreError(f"FAISS store {folder}: index {file.name} does not match the rows")
        if index.ntotal < n_rows:  # rows saved since the index was: added now, not retrained
            index.add(np.ascontiguousarray(self._vecs()[index.ntotal :]))
        self._ann = index
        self._ann_info = {k: v for k, v in entry.items() if k not in ("file", "sha256", "rows")}
        self._ann_saved = dict(entry)

    # -- primitives ----------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the vectors (``None`` for an empty store of a text model)."""
        return self._dim

    @property
    def _index(self) -> Any:
        """The FAISS index searched: the approximate one when built, else the exact one."""
        return self._ann if self._ann is not None else self._flat

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

    def _storage(self, dim: int) -> Any:
        """The ``IndexFlatIP`` holding every row (made on first write for a text model)."""
        if self._flat is None:
            faiss = require("faiss", "faiss-cpu")
            self._flat = faiss.IndexFlatIP(int(dim))
            self._dim = int(dim)
        return self._flat

    def _vecs(self) -> np.ndarray:
        """A view of every row's vector (valid until the next write)."""
        import numpy as np

        faiss = require("faiss", "faiss-cpu")
        n = len(self._ids)
        if self._flat is None or not n:
            return np.zeros((0, self._dim or 0), np.float32)
        view = faiss.rev_swig_ptr(self._flat.get_xb(), n * self._flat.d)
        return np.asarray(view).reshape(n, self._flat.d)

    def __len__(self) -> int:
        return len(self._row)

    def records(self) -> dict[str, dict[str, Any]]:
        return {
            i: dict(self._docs[i].metadata)
            for i in self._ids
            if i is not None and self._row.get(i) is not None
        }

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [_copy(self._docs[i]) for i in ids if i in self._docs]

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        return {i for i in ids if i in self._docs}

    def _write(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        present = list(self.existing_ids(ids))
        if present:
            self._delete_ids(present)
        self._append(ids, vectors, documents)

    def _append(
        self,
        ids: Sequence[str | None],
        vectors: np.ndarray,
        documents: Sequence[Document],
        *,
        to_index: bool = True,
    ) -> None:
        import numpy as np

        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        self._storage(int(matrix.shape[1])).add(matrix)
        if to_index and self._ann is not None:
            self._ann.add(matrix)
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
        self._dead_sel = None

    def _delete_ids(self, ids: Sequence[str]) -> None:
        for i in ids:
            row = self._row.get(i)
            if row is not None:
                self._drop_row(row)

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

    def _search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """Approximate search rescored exactly; exact with a filter (over the matching rows,
        never fewer than k) or while no approximate index is built."""
        import numpy as np

        if not self._row:
            return []
        faiss = require("faiss", "faiss-cpu")
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        if filter is not None:
            rows = [
                r
                for r, i in enumerate(self._ids)
                if i is not None and metadata_matches(self._docs[i].metadata, filter)
            ]
            if not rows:
                return []
            params = faiss.SearchParameters(
                sel=faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64))
            )
            scores, found = self._flat.search(query, min(k, len(rows)), params=params)
            return self._hits(found[0], scores[0])
        wanted = min(k, len(self._row))
        if self._ann is not None:
            fetch = max(k, 1) * int(self._ann_info.get("refine") or ann.refine_for(self._ann))
            cand = ann.candidates(
                self._ann, query, fetch, self._ann_info.get("params") or {}, self._dead_selector()
            )
            found_rows, found_scores = ann.rescore(self._vecs(), query[0], cand[0], k)
            if len(found_rows) >= wanted:
                return self._hits(found_rows, found_scores)
        sel = self._dead_selector()
        params = None if sel is None else faiss.SearchParameters(sel=sel)
        scores, found = self._flat.search(query, wanted, params=params)
        return self._hits(found[0], scores[0])

    def _hits(self, rows: Any, scores: Any) -> list[tuple[Document, float]]:
        out = []
        for r, s in zip(rows, scores, strict=True):
            rid = self._ids[int(r)] if r >= 0 else None
            if rid is not None:
                out.append((_copy(self._docs[rid]), float(s)))
        return out

    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
        import numpy as np

        if self._flat is None or not ids:
            return np.zeros((0, self._dim or 0), np.float32)
        return np.array(self._vecs()[[self._row[i] for i in ids]])

    # -- approximate index ---------------------------------------------------------------
    def build_index(self, *, force: bool = False, queries: np.ndarray | None = None) -> bool:
        """Build the approximate index the kind asks for, if it is missing or outgrown.

        ``"auto"`` re-decides by the live vector count and the memory budget. Deleted rows
        are dropped first (row numbers are the index's ids); the index is trained on a sample
        of the vectors, filled, then tuned (see :meth:`tune`). Saves call this.

        Returns:
            Whether an index was built (the next save then rewrites every file).
        """
        n, dim = len(self), self._dim
        target = ann.resolve(self._kind, n, int(dim or 0), self.memory_budget) if n else "flat"
        if target == "flat" or n < ann.MIN_ANN_ROWS or dim is None:
            dropped = self._ann is not None
            self._ann, self._ann_info = None, {}
            return dropped
        if self._ann is not None and not force and self._ann_info.get("kind") == target:
            return False
        self._compact_rows()
        factory = ann.factory_string(target, n, dim)
        started = time.perf_counter()
        self._ann = ann.build(factory, self._vecs())
        self._ann_info = {
            "kind": target,
            "factory": factory,
            "build_seconds": round(time.perf_counter() - started, 3),
            "memory_bytes": ann.estimate_memory(target if target in ann.KINDS else "flat", n, dim),
        }
        self.tune(queries)
        return True

    def tune(self, queries: np.ndarray | None = None) -> dict[str, Any]:
        """Re-measure recall@10 and pick ``efSearch`` / ``nprobe`` for :attr:`recall_target`.

        Args:
            queries: Held-out query vectors (unit rows); default: 200 sampled stored vectors.

        Returns:
            The index description the manifest records (see :attr:`index_info`).
        """
        import numpy as np

        if self._ann is not None:
            dead = None
            if self._dead:
                dead = np.zeros(len(self._ids), bool)
                dead[list(self._dead)] = True
            self._ann_info.update(
                ann.tune(
                    self._ann, self._vecs(), dead=dead, queries=queries, target=self.recall_target
                )
            )
        return self.index_info

    def _compact_rows(self) -> bool:
        """Drop deleted rows from memory (renumbering the rows, dropping the approximate
        index: the caller rebuilds it); returns whether any were dropped."""
        import numpy as np

        if not self._dead:
            return False
        live = [r for r, i in enumerate(self._ids) if i is not None]
        vectors = np.array(self._vecs()[live])
        ids = [self._ids[r] for r in live]
        docs = [self._docs[str(i)] for i in ids]
        self._flat, self._ids, self._row, self._docs = None, [], {}, {}
        self._dead, self._dead_sel, self._ann = set(), None, None
        self._saved, self._ann_saved = None, None  # the saved row numbers no longer hold
        if ids:
            self._append(ids, vectors, docs, to_index=False)
        return True

    # -- locking -------------------------------------------------------------------------
    def acquire_write_lock(self) -> None:
        """Become the only writer of this store's folder (taken lazily by any write).

        Raises:
            StoreLockedError: Another process writes the folder.
            StoreError: The folder was saved by someone else since this store was opened.
        """
        if self.path is None or (self._lock is not None and self._lock.held):
            return
        lock = StoreLock(self.path)
        lock.acquire()
        self._lock = lock
        self._finalizer = weakref.finalize(self, lock.release)
        try:
            self._check_generation(self.path)
        except StoreError:
            self.close()
            raise

    def close(self) -> None:
        """Release the writer lock (unsaved changes are not saved)."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._lock = None

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
    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the store to ``path`` (or its own folder) atomically; returns the folder.

        Only the rows added since the last save are written (a new segment), plus the
        deleted row numbers and, when rebuilt or lagging, the index; everything is rewritten
        when compaction is due (see the module docs).

        Raises:
            StoreLockedError: Another process writes the folder.
            StoreError: No folder, or the folder was saved by another writer meanwhile.
        """
        if path is not None and (self.path is None or Path(path) != self.path):
            self.close()
            self.path = Path(path)
            self._generation = None
            self._saved, self._ann_saved = None, None  # nothing of ours there to build on
            with contextlib.suppress(StoreError):  # saving to another folder replaces it
                self._generation = int(read_manifest(self.path).get("generation", 0))
        if self.path is None:
            raise StoreError("this FAISS store has no folder: pass save(path)")
        folder = self.path
        self.acquire_write_lock()
        self._check_generation(folder)
        generation = (self._generation or 0) + 1
        token = f"{generation:08d}-{uuid.uuid4().hex[:8]}"
        rebuilt = self.build_index()
        if self._saved is None or rebuilt or self._compaction_due():
            had_index = self._ann is not None
            if self._compact_rows() and had_index:
                self.build_index(force=True)
            self._meta_dirty.clear()
            base = self._write_segment(folder, token, 0, len(self._ids))
            saved: dict[str, Any] = {**base, "segments": [], "deletions": None}
        else:
            self._readd_changed_metadata()
            saved = {**self._saved, "segments": list(self._saved["segments"])}
            if len(self._ids) > self._saved_rows:
                segment = self._write_segment(folder, token, self._saved_rows, len(self._ids))
                saved["segments"].append({"rows": len(self._ids) - self._saved_rows, **segment})
            if len(self._dead) != self._saved_dead:
                saved["deletions"] = self._write_deletions(folder, token)
        index_entry = self._index_entry(folder, token)
        n_rows = len(self._ids)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "generation": generation,
            "model": self._model_record(),
            "count": len(self),
            "dim": self._dim,
            "metric": "inner_product",
            "rows": n_rows,
            "vectors": saved["vectors"],
            "documents": saved["documents"],
            "segments": saved["segments"],
            "deletions": saved["deletions"],
            "index": index_entry,
        }
        write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
        self._generation = generation
        self._saved, self._saved_rows, self._saved_dead = saved, n_rows, len(self._dead)
        self._ann_saved = index_entry if index_entry.get("file") else None
        keep = {MANIFEST, *_files_of(manifest)}
        for old in folder.iterdir():  # older generations, leftovers of interrupted saves
            if old.name not in keep and _DATA_FILE.match(old.name):
                with contextlib.suppress(OSError):
                    old.unlink()
        return folder

    def _compaction_due(self) -> bool:
        """Whether this save should rewrite everything into one segment."""
        n_rows = len(self._ids)
        segments = len((self._saved or {}).get("segments") or [])
        return (
            len(self) * int(self._dim or 0) * 4 <= self.full_save_below_bytes
            or len(self._dead) > self.compact_deleted_fraction * max(n_rows, 1)
            or segments + (n_rows > self._saved_rows) > self.max_segments
        )

    def _readd_changed_metadata(self) -> None:
        """Rows saved before whose metadata changed: re-added (old row deleted) for this save."""
        import numpy as np

        changed = [
            i for i in self._meta_dirty if self._row.get(i, self._saved_rows) < self._saved_rows
        ]
        self._meta_dirty.clear()
        if changed:
            vectors = np.array(self._vecs()[[self._row[i] for i in changed]])
            docs = [self._docs[i] for i in changed]
            self._delete_ids(changed)
            self._append(changed, vectors, docs)

    def _write_segment(self, folder: Path, token: str, start: int, stop: int) -> dict[str, Any]:
        """Write rows ``start:stop`` as a vectors file and a documents file."""
        import numpy as np

        vectors = np.ascontiguousarray(self._vecs()[start:stop], dtype=np.float32)
        if stop > start and bad_vector_rows(vectors):
            raise StoreError(f"FAISS store {folder}: refusing to save NaN/inf or zero vectors")
        if not len(vectors):
            vectors = np.zeros((0, int(self._dim or 0)), np.float32)
        vec_file = folder / f"vectors-{token}.npy"

        def write_vectors(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, vectors, allow_pickle=False)

        write_atomic_with(vec_file, write_vectors)
        payload: list[dict[str, Any]] = []
        for i in self._ids[start:stop]:
            if i is None:  # deleted before it was ever saved: a placeholder keeps rows aligned
                payload.append({"id": None, "page_content": "", "metadata": {}})
            else:
                doc = self._docs[i]
                payload.append(
                    {"id": i, "page_content": doc.page_content, "metadata": doc.metadata}
                )
        doc_file = folder / f"documents-{token}.json"
        write_atomic(doc_file, json.dumps(payload).encode("utf-8"))
        return {
            "vectors": {"file": vec_file.name, "sha256": sha256_file(vec_file)},
            "documents": {"file": doc_file.name, "sha256": sha256_file(doc_file)},
        }

    def _write_deletions(self, folder: Path, token: str) -> dict[str, Any] | None:
        import numpy as np

        if not self._dead:
            return None
        rows = np.asarray(sorted(self._dead), dtype=np.int64)
        file = folder / f"deletions-{token}.npy"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, rows, allow_pickle=False)

        write_atomic_with(file, write)
        return {"file": file.name, "sha256": sha256_file(file), "count": len(rows)}

    def _index_entry(self, folder: Path, token: str) -> dict[str, Any]:
        """The manifest's ``index``: written anew when rebuilt or lagging, else the saved one."""
        import numpy as np

        n_rows = len(self._ids)
        if self._ann is None:
            return {
                "requested": self._kind,
                "kind": "flat",
                "factory": "Flat",
                "file": None,
                "recall": 1.0,
                "memory_bytes": n_rows * int(self._dim or 0) * 4,
            }
        saved = self._ann_saved
        if saved is not None and saved.get("file") and (folder / saved["file"]).is_file():
            lag = n_rows - int(saved.get("rows", 0))
            if lag <= self.index_lag_fraction * max(int(saved.get("rows", 0)), 1):
                return {**saved, **self._ann_info, "requested": self._kind}
            self.tune()  # the index grew by more than the lag allowed: re-measure
        faiss = require("faiss", "faiss-cpu")
        data = faiss.serialize_index(self._ann)
        file = folder / f"index-{token}.faiss"

        def write(tmp: Path) -> None:
            np.asarray(data, dtype=np.uint8).tofile(tmp)

        write_atomic_with(file, write)
        self._ann_info["memory_bytes"] = int(data.nbytes)
        return {
            "requested": self._kind,
            **self._ann_info,
            "file": file.name,
            "sha256": sha256_file(file),
            "rows": int(self._ann.ntotal),
        }

    def persist(self) -> None:
        """Save to the store's folder (no-op for an in-memory store)."""
        if self.path is not None:
            self.save()

    # -- import --------------------------------------------------------------------------
    @classmethod
    def import_langchain_faiss(
        cls,
        folder: str | os.PathLike[str],
        embeddings: Embeddings,
        *,
        allow_dangerous_deserialization: bool = False,
        index_name: str = "index",
        path: str | os.PathLike[str] | None = None,
    ) -> FAISSImageStore:
        """Convert a folder written by stock LangChain ``FAISS.save_local`` to this format.

        Stock LangChain stores keep their documents in a **pickle**, and unpickling runs
        code chosen by whoever wrote the file: only import folders you trust. That is why
        ``allow_dangerous_deserialization`` must be passed (and true) for this one call;
        the converted store is pickle-free and loads without it.

        The vectors are taken as they are (normalised for cosine search); the caller
        vouches that ``embeddings`` is the model that made them (the dimension is checked).
        Ids are content ids when a document's metadata has ``sha256``, else the stock ids.
        Rows with NaN/inf or zero-norm vectors are left out (see :attr:`skipped_rows`).

        Args:
            folder: The stock store's folder (``index.faiss`` + ``index.pkl``).
            embeddings: The model that produced its vectors.
            allow_dangerous_deserialization: Must be ``True`` (you trust the pickle); left
                out or false, nothing is read and :class:`StoreError` is raised.
            index_name: The stock store's ``index_name``.
            path: Where to save the converted store (``None``: in memory only).

        Raises:
            StoreError: Not opted in, unreadable folder, or a dimension mismatch.

        Example:
            .. code-block:: python

                store = FAISSImageStore.import_langchain_faiss(
                    "old-index", embeddings, allow_dangerous_deserialization=True, path="index"
                )
                FAISSImageStore.load("index", embeddings)   # no pickle from now on
        """
        import numpy as np

        if allow_dangerous_deserialization is not True:
            raise StoreError(
                f"importing the LangChain FAISS folder {folder} unpickles its index.pkl, which "
                "can run arbitrary code: pass allow_dangerous_deserialization=True only for "
                "folders you trust"
            )
        require("faiss", "faiss-cpu")
        require("langchain_community", "langchain-community")
        from langchain_community.vectorstores import FAISS

        try:
            stock = FAISS.load_local(
                str(folder),
                embeddings,  # only stored by the stock object: nothing is embedded here
                index_name=index_name,
                allow_dangerous_deserialization=True,
            )
        except Exception as exc:
            raise StoreError(f"cannot read the LangChain FAISS folder {folder}: {exc}") from exc
        in_place = path is not None and Path(path).resolve() == Path(folder).resolve()
        store = cls(embeddings, None if in_place else path)
        if in_place:  # converting the stock folder itself: the manifest is written beside it
            store.path = Path(folder)
        n = int(stock.index.ntotal)
        if store.dim is not None and int(stock.index.d) != store.dim:
            raise StoreError(
                f"{folder} holds {stock.index.d}-d vectors; {model_record(embeddings)['model']} "
                f"makes {store.dim}-d ones"
            )
        model_id = str(model_record(embeddings)["model"])
        vectors = (
            np.asarray(stock.index.reconstruct_n(0, n), dtype=np.float32)
            if n
            else np.zeros((0, int(stock.index.d)), np.float32)
        )
        bad = bad_vector_rows(vectors) if n else {}
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vectors = vectors / norms
        ids: list[str] = []
        docs: list[Document] = []
        rows: list[int] = []
        seen: set[str] = set()
        for row in range(n):
            if row in bad:
                continue
            stock_id = stock.index_to_docstore_id[row]
            doc = stock.docstore.search(stock_id)
            if not isinstance(doc, Document):
                raise StoreError(f"{folder}: row {row} has no document ({stock_id!r})")
            sha = doc.metadata.get("sha256")
            new_id = content_id(str(sha), model_id) if sha else str(stock_id)
            if new_id in seen:
                continue
            seen.add(new_id)
            ids.append(new_id)
            rows.append(row)
            docs.append(
                Document(id=new_id, page_content=doc.page_content, metadata=dict(doc.metadata))
            )
        if ids:
            store.upsert_vectors(ids, vectors[rows], docs)
        store.skipped_rows = sorted(bad)
        if path is not None:
            store.save()
        return store


def _refuse_stock_folder(folder: Path) -> None:
    """Refuse a folder written by stock LangChain ``FAISS.save_local`` (it would look empty)."""
    stock = sorted(p.name for p in folder.glob("*.faiss") if p.with_suffix(".pkl").is_file())
    if stock:
        raise StoreError(
            f"{folder} is a stock LangChain FAISS folder ({stock[0]} + "
            f"{Path(stock[0]).with_suffix('.pkl').name}, no {MANIFEST}), not a FAISS image "
            "store: convert it once with FAISSImageStore.import_langchain_faiss(folder, "
            "embeddings, allow_dangerous_deserialization=True, path=NEW_FOLDER) if you trust "
            "its pickle"
        )


def _files_of(manifest: dict[str, Any]) -> list[str]:
    """Every data file a manifest names."""
    entries = [manifest.get("vectors"), manifest.get("documents"), manifest.get("deletions")]
    for segment in manifest.get("segments") or []:
        entries += [segment.get("vectors"), segment.get("documents")]
    entries.append(manifest.get("index"))
    return [str(e["file"]) for e in entries if isinstance(e, dict) and e.get("file")]


def _copy(doc: Document) -> Document:
    """A document callers can change without changing the store."""
    return Document(id=doc.id, page_content=doc.page_content, metadata=dict(doc.metadata))


def _recorded_image_model(folder: Path, manifest: dict[str, Any]) -> ImageEmbeddings:
    from langchain_image_embeddings.embeddings import ImageEmbeddings

    record = manifest.get("model") or {}
    if "fingerprint" not in record:
        raise StoreError(
            f"FAISS store {folder} was written with {record.get('model')!r}, not an image model: "
            "pass the same embeddings to open it"
        )
    return ImageEmbeddings(str(record.get("model")))
