"""Loading and saving a FAISS image store: manifest, segments, deletions, index file.

:class:`FAISSPersistence` adds to :class:`~langchain_image_embeddings.vectorstores.faiss._core.FAISSCore`
everything that touches the store's folder: loading a generation (checksums verified, vectors
memory-mapped), the writer-lock hooks and the generation check, and incremental, atomic
saves (see :mod:`~langchain_image_embeddings.vectorstores.faiss` for the guarantees and
:mod:`~langchain_image_embeddings.vectorstores.faiss._files` for the files).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._atomic import write_atomic
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores.faiss import _files as files
from langchain_image_embeddings.vectorstores.faiss._core import FAISSCore, serialised
from langchain_image_embeddings.vectorstores.faiss._files import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    read_manifest,
)
from langchain_image_embeddings.vectorstores.faiss._rows import Segment, map_segment

if TYPE_CHECKING:
    import numpy as np

_LOAD_TRIES = 5
DEFAULT_RECALL_TARGET = 0.95


class FAISSPersistence(FAISSCore):
    """Folder I/O of a FAISS image store (a base class: use
    :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore`).

    Example:
        .. code-block:: python

            store = FAISSImageStore(embeddings, "index")   # loads the folder's store
            store.save()                                   # writes what changed
    """

    path: Path | None
    _given: dict[str, bool]  # settings given to the constructor (else the manifest's)
    _generation: int | None  # the generation loaded or last saved

    #: Saves rewrite everything while the live vectors take at most this many bytes.
    full_save_below_bytes: int = 8 << 20
    #: Compact when deleted rows pass this fraction of all rows ...
    compact_deleted_fraction: float = 0.2
    #: ... or when a save would leave more segments than this (the base not counted).
    max_segments: int = 16
    #: Rewrite the index file when rows added since it was written pass this fraction.
    index_lag_fraction: float = 0.1

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
        self._check_model(manifest.get("model") or {}, f"FAISS store {folder}")
        if manifest.get("dim") is not None:
            self._dim = int(manifest["dim"])
        self._reset()
        dead: list[int] = []
        for vectors, records in files.read_segments(folder, manifest, self._dim):
            if not records:
                continue
            start = len(self._ids)
            dead.extend(start + r for r, rec in enumerate(records) if rec.get("id") is None)
            self._rows.add_part(vectors)
            self._add_records([rec.get("id") for rec in records], map(files.document_of, records))
        self._dim = self._rows.dim if self._rows.dim is not None else self._dim
        dead.extend(files.read_deletions(folder, manifest.get("deletions")))
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
        """Settings not given to the constructor come from the manifest; a saved index of the
        kind asked for is deserialized (rows saved since it was written are added)."""
        if not self._given["requested"]:
            self._kind = str(entry.get("requested", "flat"))
        if not self._given["recall_target"]:
            self.recall_target = float(entry.get("recall_target", DEFAULT_RECALL_TARGET))
        if not self._given["memory_budget"]:
            budget = entry.get("memory_budget")
            self.memory_budget = None if budget is None else int(budget)
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
    def _lock_dir(self) -> Path | None:
        return self.path

    def _on_locked(self) -> None:
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
    @serialised
    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the store to ``path`` (or its own folder) atomically; returns the folder.

        Only the rows added since the last save are written (a new segment), plus the
        deleted row numbers and, when rebuilt or lagging, the index; everything is rewritten
        when compaction is due (see the module docs). Afterwards every saved row is read
        from its memory-mapped segment file; none is held in memory.

        Raises:
            StoreLockedError: Another process writes the folder.
            StoreError: No folder, or the folder was saved by another writer meanwhile.
        """
        if path is not None and (self.path is None or Path(path) != self.path):
            super().close()  # release the old folder without saving into it
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
        new_segment: Segment | None = None
        if self._saved is None or self._index_outdated() or self._compaction_due():
            saved = self._write_base(folder, token)
            if self._index_outdated():
                self.build_index(force=True)
        else:
            saved, new_segment = self._write_increment(folder, token)
        manifest = self._manifest(generation, saved, self._index_entry(folder, token))
        write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
        self._generation = generation
        self._saved, self._saved_rows, self._saved_dead = saved, len(self._ids), len(self._dead)
        self._ann_saved = manifest["index"] if manifest["index"].get("file") else None
        if new_segment is not None:
            self._rows.saved_up_to(new_segment)  # the new rows now live in their segment file
        files.remove_unreferenced(folder, manifest)  # no map of ours points at these
        return folder

    def _manifest(
        self, generation: int, saved: dict[str, Any], index_entry: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "generation": generation,
            "model": self._model_record(),
            "count": len(self),
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
            len(self) * int(self._dim or 0) * 4 <= self.full_save_below_bytes
            or len(self._dead) > self.compact_deleted_fraction * max(n_rows, 1)
            or segments + (n_rows > self._saved_rows) > self.max_segments
        )

    def _write_base(self, folder: Path, token: str) -> dict[str, Any]:
        """Stream the live rows into one new base segment, then read them from it.

        Deleted rows are dropped (the rows renumbered, the approximate index dropped for a
        rebuild). The store changes only once both files are written; until the manifest
        names them, ``_saved`` is ``None`` so that a failed save is redone in full.
        """
        import numpy as np

        self._saved = None
        dim = int(self._dim or 0)
        live = None
        if self._dead:
            live = np.asarray([r for r, i in enumerate(self._ids) if i is not None], np.int64)
        n = len(self._ids) if live is None else len(live)
        step = max(1, (64 << 20) // (4 * max(dim, 1)))
        if live is None:
            blocks: Iterable[np.ndarray] = (b for _, b in self._rows.blocks())
        else:
            blocks = (self._rows.take(live[s : s + step]) for s in range(0, n, step))
        vectors = files.write_vectors(folder, token, blocks, n, dim)
        ids = self._ids if live is None else [self._ids[r] for r in live]
        documents = files.write_documents(folder, token, [self._record(i) for i in ids])
        mapped = map_segment(folder / vectors["file"], dim)
        if live is not None:
            docs = [self._docs[str(i)] for i in ids]
            self._reset()
            self._add_records(ids, docs)
        self._rows.replace_all(mapped)  # old maps dropped before their files are deleted
        self._meta_dirty.clear()
        return {"vectors": vectors, "documents": documents, "segments": [], "deletions": None}

    def _write_increment(self, folder: Path, token: str) -> tuple[dict[str, Any], Segment | None]:
        """Write the rows added since the last save as a segment, and the deletions if they
        changed; returns the entries and a map of the new segment (used once saved)."""
        self._readd_changed_metadata()
        assert self._saved is not None
        saved = {**self._saved, "segments": list(self._saved["segments"])}
        start, stop = self._saved_rows, len(self._ids)
        mapped = None
        if stop > start:
            dim = int(self._dim or 0)
            blocks = (b for _, b in self._rows.blocks(start, stop))
            vectors = files.write_vectors(folder, token, blocks, stop - start, dim)
            documents = files.write_documents(
                folder, token, [self._record(i) for i in self._ids[start:stop]]
            )
            saved["segments"].append(
                {"rows": stop - start, "vectors": vectors, "documents": documents}
            )
            mapped = map_segment(folder / vectors["file"], dim)
        if len(self._dead) != self._saved_dead:
            saved["deletions"] = files.write_deletions(folder, token, self._dead)
        return saved, mapped

    def _record(self, rid: str | None) -> dict[str, Any]:
        if rid is None:  # deleted before it was ever saved: a placeholder keeps rows aligned
            return {"id": None, "page_content": "", "metadata": {}}
        doc = self._docs[rid]
        return {"id": rid, "page_content": doc.page_content, "metadata": doc.metadata}

    def _readd_changed_metadata(self) -> None:
        """Rows saved before whose metadata changed: re-added (old row deleted) for this save."""
        import numpy as np

        changed = [
            i for i in self._meta_dirty if self._row.get(i, self._saved_rows) < self._saved_rows
        ]
        self._meta_dirty.clear()
        if changed:
            vectors = self._rows.take(np.asarray([self._row[i] for i in changed], np.int64))
            docs = [self._docs[i] for i in changed]
            self._delete_ids(changed)
            self._append(changed, vectors, docs)

    def _index_entry(self, folder: Path, token: str) -> dict[str, Any]:
        """The manifest's ``index``: written anew when rebuilt or lagging, else the saved one."""
        settings = {
            "requested": self._kind,
            "recall_target": self.recall_target,
            "memory_budget": self.memory_budget,
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
            or len(self._dead) != self._saved_dead
            or bool(self._meta_dirty)
        )

    def close(self) -> None:
        """Save unsaved changes into the store's folder, then release the writer lock and
        the files. An in-memory store (no folder) only releases.

        Leaving a ``with`` block by an exception releases without saving: the folder keeps
        its last save, as if the block had not run since.

        Raises:
            StoreLockedError: Another process writes the folder (the store is released).
            StoreError: The folder was saved by another writer meanwhile (released too).
        """
        try:
            if self.path is not None and self.has_unsaved_changes():
                self.save()
        finally:
            super().close()

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            super().close()

    def persist(self) -> None:
        """Save to the store's folder (no-op for an in-memory store)."""
        if self.path is not None:
            self.save()
