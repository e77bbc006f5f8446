"""FAISS image store: exact or approximate FAISS indexes, saved incrementally without pickle.

On disk a store is a folder with ``manifest.json`` (format version 3: generation, model
record, counts, index settings, and the name and SHA-256 of every data file), a **base
segment** (``vectors-<token>.npy``, ``float32`` unit vectors one row per record, and
``documents-<token>.sqlite``: ids, URIs, metadata keyed by row number, read for results;
see :mod:`~langchain_image_embeddings.vectorstores.faiss._documents`), the **segments**
appended by later saves (same two files each, holding only the rows added since the save
before), a
``deletions-<token>.npy`` file (``int64`` row numbers of deleted or replaced rows) and, for
an approximate index, ``index-<token>.faiss`` (``faiss.write_index`` format, never a
pickle). Row numbers run through the base and then the segments in manifest order.

The store is :class:`FAISSImageStore` here (its constructors, ``save`` and the index
settings) over one :class:`~langchain_image_embeddings.vectorstores.faiss._backend.FAISSBackend`:
rows, tombstones, search, loading and saving (vectors in
:mod:`~langchain_image_embeddings.vectorstores.faiss._rows`, the approximate indexes in
:mod:`~langchain_image_embeddings.vectorstores.faiss._index`, the files in
:mod:`~langchain_image_embeddings.vectorstores.faiss._files`). Everything every store shares
(the LangChain contract, content ids, ingest, the model check, the writer lock) is
:class:`~langchain_image_embeddings.vectorstores.base.ImageVectorStore`.

**Memory.** The raw vectors of saved segments are memory-mapped, not loaded
(:mod:`~langchain_image_embeddings.vectorstores.faiss._rows`); only rows added since the last
save are held in RAM. An approximate index is searched in memory and its candidates are
rescored exactly from the mapped rows, so an IVF-PQ store's resident memory is its codes
plus the ids, not the vectors: saved documents stay in their SQLite files too, read for the
results (only unsaved rows hold a ``Document`` in RAM).

A save writes only what changed: a new segment with the rows added since the last save, the
deletions file when rows were deleted, the index file when it was rebuilt or lags far behind,
then the manifest, each through the package's one atomic write (temporary file, fsync,
rename, folder fsync); it never modifies a file the current manifest names. Compaction
(everything streamed into one new base segment, deleted rows dropped) runs when deleted rows
pass a fifth of the rows, when segments pile up, or when the store is small enough for a
full rewrite to cost nothing. Only after the manifest switch are unreferenced files (older
generations, leftovers of killed saves) deleted. A kill at any moment leaves either the old
or the new store, never a torn one; a store whose files are missing or fail their checksum
is refused at open.

Writers take an exclusive lock on the folder (see
:mod:`langchain_image_embeddings._locks`); a store object also remembers
the generation it loaded and refuses to save over a newer one written meanwhile. Version 1
stores (one vectors file, one documents file) and version 2 stores (JSON documents files,
held in memory while open) still open; the next save rewrites them as version 3.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._records import (
    image_embeddings_of,
    refuse_swapped_arguments,
)
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from langchain_image_embeddings.vectorstores.faiss import _files as files
from langchain_image_embeddings.vectorstores.faiss._backend import FAISSBackend
from langchain_image_embeddings.vectorstores.faiss._files import MANIFEST, read_manifest
from langchain_image_embeddings.vectorstores.faiss._stock import import_stock_folder

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.vectorstores._records import AddResult

__all__ = ["FAISSImageStore"]


class FAISSImageStore(ImageVectorStore):
    """Images (or texts) in a FAISS index: a LangChain ``VectorStore`` saved without pickle.

    Inner product on unit vectors (cosine); scores are relevance in ``[0, 1]``. The index is
    exact (``"flat"``) or approximate; approximate candidates are rescored exactly with the
    stored vectors (memory-mapped from the saved segments), and the search parameters are
    tuned to a recall target that the manifest records.

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
            loaded, its vectors mapped, its model checked); ``None``: in memory until
            :meth:`save` gets a path.
        index: str | None
            ``"flat"`` (exact; default for a new store), ``"hnsw"`` (``HNSW32``),
            ``"ivf-pq"`` (OPQ, inverted lists, 4-bit product codes), ``"auto"`` (flat below
            100,000 vectors, HNSW while it fits ``memory_budget``, IVF-PQ beyond) or a
            ``faiss.index_factory`` string; ``None`` keeps a saved store's kind. An
            approximate index is built (trained on a sample, then filled) at :meth:`save`
            or :meth:`build_index` once the store holds 1,000 vectors; exact search before.
            ``"auto"`` is decided there, by the live vector count at that moment.
        recall_target: float | None
            The recall@10 against exact search that ``efSearch`` / ``nprobe`` are tuned to
            (default 0.95); ``None`` keeps a saved store's target. Recorded in the manifest.
        memory_budget: int | str | None
            Bytes (or a size such as ``"2GB"``) an HNSW index may take before ``"auto"``
            picks IVF-PQ; ``None`` keeps a saved store's budget (default: half the
            machine's memory). Recorded in the manifest. IVF-PQ tries larger codes (8-bit
            PQ, then scalar codes) while they fit it and the recall target is missed.
        expected_rows: int | None
            The rows the index is planned for when the store will grow past what it holds
            (a bulk load): IVF lists and the training sample are sized for it, the index is
            built once enough rows are held to train those lists (39 a list; exact search
            until then), and a factory string whose lists it could never train is refused
            here. ``None`` keeps a saved store's plan (default: the rows held).

    Recall target, kept or refused:
        After building, search parameters are tuned on 200 held-out stored rows (left out
        of the training sample and of the rows searched): ``efSearch`` / ``nprobe`` and the
        exact rescoring depth (refine) jointly, on their Pareto front. If the target is
        missed, the next plan is built (IVF-PQ: 8-bit codes, more sub-quantizers, scalar
        codes; HNSW: a denser graph; ``"auto"``: the other kind), and if none reaches it
        the save raises :class:`~langchain_image_embeddings.errors.StoreError` with the
        recall of every plan tried. The recall reached, the chosen point and the front
        are recorded in the manifest (``imgemb info`` shows them).

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

    def __init__(
        self,
        embeddings: Embeddings,
        path: str | os.PathLike[str] | None = None,
        *,
        index: str | None = None,
        recall_target: float | None = None,
        memory_budget: int | str | None = None,
        expected_rows: int | None = None,
    ) -> None:
        require("faiss", "faiss-cpu")
        refuse_swapped_arguments("FAISSImageStore", embeddings, path)
        #: Rows left out by :meth:`import_langchain_faiss` (NaN/inf or zero vectors).
        self.skipped_rows: list[int] = []
        self.last_add: AddResult | None = None
        image = image_embeddings_of(embeddings)
        backend = FAISSBackend(
            None if path is None else Path(path),
            dim=None if image is None else int(image.dim),
            index=index,
            recall_target=recall_target,
            memory_budget=memory_budget,
            expected_rows=expected_rows,
        )
        super().__init__(embeddings, backend)
        self.backend: FAISSBackend = backend

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
        approximate index is deserialized, not retrained. ``kwargs`` go to the constructor.

        Raises:
            StoreError: Missing, torn or corrupt files.
            ModelMismatchError: ``embeddings`` is not the model that wrote the store.
        """
        refuse_swapped_arguments("FAISSImageStore.load", embeddings, path)
        if not (Path(path) / MANIFEST).exists():
            files.refuse_stock_folder(Path(path))
        manifest = read_manifest(path)
        if embeddings is None:
            embeddings = files.recorded_image_model(Path(path), manifest)
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
        refuse_swapped_arguments("FAISSImageStore.open", embeddings, path)
        if (Path(path) / MANIFEST).exists():
            return cls.load(path, embeddings, **kwargs)
        files.refuse_stock_folder(Path(path))
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
        refuse_swapped_arguments("FAISSImageStore.from_images", embeddings, path)
        store = cls(embeddings, path)
        store.last_add = store.add_images(images)
        if path is not None:
            store.save()
        return store

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
        if allow_dangerous_deserialization is not True:
            raise StoreError(
                f"importing the LangChain FAISS folder {folder} unpickles its index.pkl, which "
                "can run arbitrary code: pass allow_dangerous_deserialization=True only for "
                "folders you trust"
            )
        in_place = path is not None and Path(path).resolve() == Path(folder).resolve()
        store = cls(embeddings, None if in_place else path)
        if in_place:  # converting the stock folder itself: the manifest is written beside it
            store.backend.path = Path(folder)
        ids, vectors, docs, skipped = import_stock_folder(
            folder, embeddings, index_name=index_name, dim=store.dim
        )
        if ids:
            store.upsert_vectors(ids, vectors, docs)
        store.skipped_rows = skipped
        if path is not None:
            store.save()
        return store

    # -- the folder ----------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The store's folder (``None``: in memory until :meth:`save` gets one)."""
        return self.backend.path

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the store to ``path`` (or its own folder) atomically; returns the folder.

        Only the rows added since the last save are written (a new segment), plus the
        deleted row numbers and, when rebuilt or lagging, the index; everything is rewritten
        when compaction is due (see the module docs). Afterwards every saved row is read
        from its memory-mapped segment file; none is held in memory. Saving to another
        folder releases this one (unsaved there) and makes ``path`` the store's folder.

        Raises:
            StoreLockedError: Another process writes the folder.
            StoreError: No folder, or the folder was saved by another writer meanwhile.
        """
        refuse_swapped_arguments("FAISSImageStore.save", None, path)
        backend = self.backend
        with backend.mutex:
            if path is not None and (backend.path is None or Path(path) != backend.path):
                self.release_write_lock()  # the old folder, without saving into it
                backend.move_to(Path(path))
            if backend.path is None:
                raise StoreError("this FAISS store has no folder: pass save(path)")
            self.acquire_write_lock()
            return backend.save()

    def persist(self) -> None:
        """Save to the store's folder (no-op for an in-memory store)."""
        if self.path is not None:
            self.save()

    def has_unsaved_changes(self) -> bool:
        """Whether rows, deletions or metadata changed since the last save (or the load)."""
        return self.backend.has_unsaved_changes()

    # -- the index -----------------------------------------------------------------------
    @property
    def index_kind(self) -> str:
        """The index asked for (``flat``, ``hnsw``, ``ivf-pq``, ``auto`` or a factory string)."""
        return self.backend.index_kind

    @property
    def index_info(self) -> dict[str, Any]:
        """The built index: ``kind``, ``factory``, tuned ``params`` and measured ``recall``."""
        return self.backend.index_info

    @property
    def recall_target(self) -> float:
        """The recall@10 against exact search that the index's search parameters are tuned
        to (set it, then :meth:`tune`)."""
        return self.backend.recall_target

    @recall_target.setter
    def recall_target(self, value: float) -> None:
        self.backend.recall_target = float(value)

    @property
    def memory_budget(self) -> int | None:
        """Bytes an HNSW index may take before ``"auto"`` picks IVF-PQ (``None``: half the RAM)."""
        return self.backend.memory_budget

    @property
    def vectors_in_memory(self) -> int:
        """Rows whose vectors are held in RAM (unsaved); saved rows are memory-mapped."""
        return self.backend.vectors_in_memory

    def build_index(self, *, force: bool = False, queries: np.ndarray | None = None) -> bool:
        """Build the approximate index the kind asks for, if it is missing or outgrown.

        ``"auto"`` is decided here (and by :meth:`save`, which calls this) by the live
        vector count and the memory budget. Deleted rows are dropped first (row numbers are
        the index's ids; called outside a save, that copies the live vectors into memory);
        the index is trained on a sample of the vectors, filled, then tuned (:meth:`tune`).

        Returns:
            Whether an index was built or dropped (the next save then rewrites every file).
        """
        return self.backend.build_index(force=force, queries=queries)

    def tune(self, queries: np.ndarray | None = None) -> dict[str, Any]:
        """Re-measure recall@10 and pick ``efSearch`` / ``nprobe`` for :attr:`recall_target`.

        Args:
            queries: Held-out query vectors (unit rows; a sample of real queries tunes
                best); default: 200 sampled stored vectors kept out of the search, each
                moved off the data by its nearest-neighbour distance for a graph (HNSW)
                index, whose recall falls for queries that are not stored rows.

        Returns:
            The index description the manifest records (see :attr:`index_info`).
        """
        return self.backend.tune(queries)

    # -- when a save rewrites everything (tuning; the defaults suit most stores) ---------
    @property
    def full_save_below_bytes(self) -> int:
        """Saves rewrite everything while the live vectors take at most this many bytes."""
        return self.backend.full_save_below_bytes

    @full_save_below_bytes.setter
    def full_save_below_bytes(self, value: int) -> None:
        self.backend.full_save_below_bytes = value

    @property
    def compact_deleted_fraction(self) -> float:
        """Compact when deleted rows pass this fraction of all rows."""
        return self.backend.compact_deleted_fraction

    @compact_deleted_fraction.setter
    def compact_deleted_fraction(self, value: float) -> None:
        self.backend.compact_deleted_fraction = value

    @property
    def max_segments(self) -> int:
        """Compact when a save would leave more segments than this (the base not counted)."""
        return self.backend.max_segments

    @max_segments.setter
    def max_segments(self, value: int) -> None:
        self.backend.max_segments = value

    @property
    def index_lag_fraction(self) -> float:
        """Rewrite the index file when rows added since it was written pass this fraction."""
        return self.backend.index_lag_fraction

    @index_lag_fraction.setter
    def index_lag_fraction(self, value: float) -> None:
        self.backend.index_lag_fraction = value
