"""The multi-vector image store: pages of patch vectors, found by candidates then MaxSim."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document

from langchain_image_embeddings._locks import StoreLock
from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.images import ImageLoadOptions
from langchain_image_embeddings.vectorstores.multivector._candidates import (
    DEFAULT_PATCH_INDEX,
    PatchIndex,
)
from langchain_image_embeddings.vectorstores.multivector._contract import (
    Filter,
    PageStoreBase,
    page_filter,
    unit_page,
)
from langchain_image_embeddings.vectorstores.multivector._files import (
    SavedPages,
    read_pages,
    write_pages,
)
from langchain_image_embeddings.vectorstores.multivector._maxsim import (
    maxsim_scores,
    relevance_from_maxsim,
)
from langchain_image_embeddings.vectorstores.multivector._pooling import pool_tokens

if TYPE_CHECKING:
    import os

    from typing_extensions import Self

    from langchain_image_embeddings.vectorstores.multivector._embedder import (
        MultiVectorEmbedder,
    )

__all__ = ["MultiVectorImageStore"]


class MultiVectorImageStore(PageStoreBase):
    """A LangChain ``VectorStore`` of page images, each kept as one vector per patch.

    Search is two stages: every query token retrieves its ``token_k`` nearest patches from
    a FAISS index over all patches (the pages they belong to are the candidates), then each
    candidate page is scored exactly with MaxSim (``Σ_tokens max_patches q·d``). Scores are
    relevance in ``[0, 1]``: ``(1 + MaxSim / query tokens) / 2`` (a mean cosine mapped like
    the single-vector stores' cosine). ``patch_index=None`` scores every page (exact).

    Pages are stored as ``float16`` rows (``2 x dim`` bytes per patch); ``pool_factor``
    pools each page's patches into a third (3) or less of the vectors before storage.
    Ids are content ids (the image bytes' SHA-256 and the model), as in the single-vector
    stores; re-adding the same bytes is skipped. Saves are atomic (see
    :mod:`~langchain_image_embeddings.vectorstores.multivector._files`) and one writer
    process at a time holds the folder's lock.

    Key init args:
        embedder: MultiVectorEmbedder | None
            The late-interaction model (``LateInteractionEncoder``); ``None`` for a store
            written and searched with vectors only (``add_vectors``, ``search_by_tokens``).
        folder: str | os.PathLike | None
            Where the store is saved (opened if it holds one); ``None``: in memory.
        patch_index: str | None
            FAISS factory string of the candidate index (``"SQfp16"``; ``"IVF4096,PQ32"``
            for millions of patches) or ``None`` for exact search.
        token_k: int
            Patches each query token retrieves in the candidate stage.
        max_candidates: int | None
            Pages scored exactly per query: the best by approximate MaxSim from the
            retrieved patches (``None``: every page found).
        pool_factor: int
            Token pooling factor applied to pages before storage (1: none).

    Example:
        .. code-block:: python

            import numpy as np
            from langchain_core.documents import Document
            from langchain_image_embeddings.vectorstores import MultiVectorImageStore

            rng = np.random.default_rng(0)
            pages = [rng.normal(size=(16, 8)).astype(np.float32) for _ in range(3)]
            store = MultiVectorImageStore(None, patch_index=None)
            store.add_vectors(["a", "b", "c"], pages, [Document(page_content=f"p{i}.png")
                                                       for i in range(3)])
            hits = store.search_by_tokens(pages[1][:4], k=1)
            assert hits[0][0].id == "b"
    """

    def __init__(
        self,
        embedder: MultiVectorEmbedder | None,
        folder: str | os.PathLike[str] | None = None,
        *,
        patch_index: str | None = DEFAULT_PATCH_INDEX,
        token_k: int = 64,
        nprobe: int = 32,
        max_candidates: int | None = 512,
        pool_factor: int = 1,
        load_options: ImageLoadOptions | None = None,
    ) -> None:
        if token_k < 1 or pool_factor < 1:
            raise ValueError("token_k and pool_factor must be at least 1")
        self.embedder = embedder
        self.folder = Path(folder) if folder is not None else None
        self.patch_index = patch_index
        self.token_k = token_k
        self.nprobe = nprobe
        self.max_candidates = max_candidates
        self.pool_factor = pool_factor
        self.load_options = load_options
        self.mutex = threading.RLock()
        self._dim: int | None = int(embedder.dim) if embedder is not None else None
        self._model: dict[str, Any] = {"model_id": embedder.model_id} if embedder else {}
        self._rows: np.ndarray = np.zeros((0, self._dim or 0), dtype=np.float16)
        self._pending: list[np.ndarray] = []
        self._starts: list[int] = []
        self._counts: list[int] = []
        self._docs: list[Document | None] = []  # None: a deleted page (its rows stay until saved)
        self._slot_of: dict[str, int] = {}
        self._index: PatchIndex | None = None
        self._dirty = False
        self._lock: StoreLock | None = None
        self._lock_release: weakref.finalize[Any, Any] | None = None
        if self.folder is not None:
            saved = read_pages(self.folder)
            if saved is not None:
                self._load(saved)

    def _load(self, saved: SavedPages) -> None:
        if self.embedder is not None and saved.model.get("model_id") != self.embedder.model_id:
            raise ModelMismatchError(
                f"{self.folder} holds pages embedded by {saved.model.get('model_id')!r}, not "
                f"{self.embedder.model_id!r}: open it with that model or use another folder"
            )
        if self._dim is not None and saved.dim != self._dim:
            raise ModelMismatchError(
                f"{self.folder} holds vectors of dimension {saved.dim}, the model makes {self._dim}"
            )
        self._dim, self._model = saved.dim, saved.model
        self._rows = saved.rows
        self._starts, self._counts = saved.starts, saved.counts
        self._docs = list(saved.documents)
        self._slot_of = {str(d.id): i for i, d in enumerate(saved.documents)}

    # -- the LangChain face (the rest is PageStoreBase's) ------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the patch vectors (``None`` until known)."""
        return self._dim

    def __len__(self) -> int:
        """Number of pages."""
        return len(self._slot_of)

    @property
    def patch_count(self) -> int:
        """Number of stored patch vectors of live pages."""
        return sum(self._counts[s] for s in self._slot_of.values())

    def bytes_per_page(self) -> float:
        """Mean bytes of patch vectors per page (``float16``: ``2 x dim`` per patch)."""
        return 2.0 * (self._dim or 0) * self.patch_count / max(1, len(self))

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Pages by id (missing ids are left out)."""
        with self.mutex:
            return [d for i in ids if (d := self._doc(i)) is not None]

    def _live(self, slot: int) -> Document:
        doc = self._docs[slot]
        if doc is None:  # pragma: no cover - slots come from _slot_of, which holds live ones
            raise KeyError(slot)
        return doc

    def _doc(self, id_: str) -> Document | None:
        slot = self._slot_of.get(id_)
        return None if slot is None else self._docs[slot]

    def page_vectors(self, id_: str) -> np.ndarray:
        """The stored patch vectors of one page (``float32``).

        Raises:
            KeyError: An id that is not in the store.
        """
        with self.mutex:
            slot = self._slot_of[id_]
            rows = self._all_rows()
            start = self._starts[slot]
            return np.asarray(rows[start : start + self._counts[slot]], dtype=np.float32)

    # -- writes --------------------------------------------------------------------------
    def add_vectors(
        self, ids: Sequence[str], pages: Sequence[np.ndarray], documents: Sequence[Document]
    ) -> None:
        """Upsert pages given as patch-vector matrices (one ``(patches, dim)`` per id).

        Rows are normalised; the store's ``pool_factor`` is applied.

        Raises:
            StoreError: A page that is not a 2-D matrix of the store's dimension, is empty,
                or has NaN/inf or zero rows (naming its id); nothing is written.
        """
        if not len(ids) == len(pages) == len(documents):
            raise ValueError("ids, pages and documents must have the same length")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in one write")
        checked = [self._checked_page(i, p) for i, p in zip(ids, pages, strict=True)]
        if self.pool_factor > 1:
            checked = [pool_tokens(p, self.pool_factor) for p in checked]
        with self.mutex:
            self._acquire_lock()
            for id_, page, doc in zip(ids, checked, documents, strict=True):
                old = self._slot_of.get(id_)
                if old is not None:
                    self._docs[old] = None
                self._slot_of[id_] = len(self._docs)
                self._starts.append(len(self._rows) + sum(len(p) for p in self._pending))
                self._counts.append(len(page))
                self._docs.append(
                    Document(id=id_, page_content=doc.page_content, metadata=dict(doc.metadata))
                )
                self._pending.append(page.astype(np.float16))
            self._dirty = True

    def _checked_page(self, id_: str, page: np.ndarray) -> np.ndarray:
        unit = unit_page(id_, page, self._dim)
        if self._dim is None:
            self._dim = int(unit.shape[1])
            self._rows = np.zeros((0, self._dim), dtype=np.float16)
        return unit

    def existing_pages(self, ids: Sequence[str]) -> set[str]:
        """Which of these page ids the store holds."""
        with self.mutex:
            return {i for i in ids if i in self._slot_of}

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete pages by id (unknown ids are ignored); ``None`` deletes every page."""
        with self.mutex:
            gone = list(self._slot_of) if ids is None else [i for i in ids if i in self._slot_of]
            if gone:
                self._acquire_lock()
            for id_ in gone:
                self._docs[self._slot_of.pop(id_)] = None
                self._dirty = True
        return True

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
                ``k`` pass, every matching page is scored.

        Raises:
            StoreError: A query of another dimension, NaN/inf or zero rows.
        """
        with self.mutex:
            if k <= 0 or not self._slot_of:
                return []
            tokens = self._checked_page("<query>", query)
            slots = self._candidates(tokens)
            if filter is not None:
                keep = page_filter(filter)
                slots = [s for s in slots if keep(self._live(s).metadata)]
                if len(slots) < k:
                    slots = [s for s in self._slot_of.values() if keep(self._live(s).metadata)]
            if not slots:
                return []
            rows = self._all_rows()
            scores = maxsim_scores(
                tokens, rows, [self._starts[s] for s in slots], [self._counts[s] for s in slots]
            )
            order = np.argsort(-scores, kind="stable")[:k]
            return [
                (self._live(slots[i]), relevance_from_maxsim(float(scores[i]), len(tokens)))
                for i in order
            ]

    def _candidates(self, tokens: np.ndarray) -> list[int]:
        """Live page slots to score: the patch index's, or every page (exact mode)."""
        if self.patch_index is None:
            return sorted(self._slot_of.values())
        index = self._patch_index()
        found = index.candidate_pages(tokens, self.token_k, self.max_candidates)
        return [int(s) for s in found if self._docs[int(s)] is not None]

    def _all_rows(self) -> np.ndarray:
        if self._pending:
            self._rows = np.concatenate([np.asarray(self._rows), *self._pending])
            self._pending = []
        return self._rows

    def _patch_index(self) -> PatchIndex:
        """The candidate index, extended with rows written since it was built."""
        rows = self._all_rows()
        if self._index is None or self._index.rows > len(rows):
            self._index = PatchIndex(
                int(self._dim or rows.shape[1]), str(self.patch_index), nprobe=self.nprobe
            )
        done = self._index.rows
        if done < len(rows):
            page_of_row = np.repeat(np.arange(len(self._counts)), self._counts)
            self._index.add(rows[done:], page_of_row[done:])
        return self._index

    # -- persistence ---------------------------------------------------------------------
    def save(self) -> None:
        """Write the store to its folder atomically (dropping deleted pages' rows).

        Raises:
            StoreError: The store has no folder.
            StoreLockedError: Another process writes the folder.
        """
        if self.folder is None:
            raise StoreError("this store has no folder: give one to save it")
        with self.mutex:
            self._acquire_lock()
            self._compact()
            model = self._model or {}
            write_pages(
                self.folder,
                SavedPages(
                    int(self._dim or 0),
                    model,
                    self.pool_factor,
                    self._rows,
                    self._starts,
                    self._counts,
                    [d for d in self._docs if d is not None],
                ),
            )
            self._dirty = False

    def _compact(self) -> None:
        """Keep only live pages' rows (slots renumbered; the patch index is rebuilt)."""
        rows = self._all_rows()
        live = [s for s, d in enumerate(self._docs) if d is not None]
        if len(live) == len(self._docs):
            return
        counts = [self._counts[s] for s in live]
        starts = [self._starts[s] for s in live]
        index = (
            np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts, strict=True)])
            if live
            else np.zeros(0, dtype=np.int64)
        )
        self._rows = np.asarray(rows[index], dtype=np.float16).reshape(-1, rows.shape[1])
        self._starts = (
            np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist() if live else []
        )
        self._counts = counts
        self._docs = [self._docs[s] for s in live]
        self._slot_of = {str(d.id): n for n, d in enumerate(self._docs) if d is not None}
        self._index = None

    def _acquire_lock(self) -> None:
        if self.folder is None or self._lock is not None:
            return
        lock = StoreLock(self.folder)
        lock.acquire()
        self._lock = lock
        self._lock_release = weakref.finalize(self, lock.release)

    def close(self) -> None:
        """Save unsaved changes (a store with a folder), then release the writer lock."""
        try:
            if self._dirty and self.folder is not None:
                self.save()
        finally:
            if self._lock_release is not None:
                self._lock_release()
            self._lock = self._lock_release = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        elif self._lock_release is not None:
            self._lock_release()
            self._lock = self._lock_release = None
