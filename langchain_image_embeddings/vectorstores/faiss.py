"""FAISS image store: an exact inner-product FAISS index, saved without pickle.

On disk a store is a folder with ``manifest.json`` (format, generation, model record,
counts and the SHA-256 of each data file), ``vectors-<generation>-<token>.npy``
(``float32``, one row per vector) and ``documents-<generation>-<token>.json`` (ids, URIs,
metadata, in row order). Saving never touches the files of the current generation: it
writes the next generation's data files under new names, then the new manifest over
``manifest.json``, each through the package's one atomic write
(:mod:`langchain_image_embeddings._atomic`: temporary file, fsync, rename, folder fsync),
and only then deletes older generations and leftovers of interrupted saves. A kill at any
moment leaves either the old or the new store, never a torn one. Loading never unpickles
anything.

Writers take an exclusive lock on the folder (see
:mod:`langchain_image_embeddings.vectorstores.locking`); a store object also remembers
the generation it loaded and refuses to save over a newer one written meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings._atomic import sha256_file, write_atomic, write_atomic_with
from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
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
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_DATA_FILE = re.compile(
    r"^(vectors-.*\.npy|documents-.*\.json|(vectors-|documents-|manifest\.json).*\.tmp)$"
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
    if manifest.get("version") != FORMAT_VERSION:
        raise StoreError(f"{file}: unsupported format version {manifest.get('version')!r}")
    return manifest


class FAISSImageStore(ImageVectorStore):
    """Images (or texts) in a FAISS index: a LangChain ``VectorStore`` saved without pickle.

    Exact inner product on unit vectors (cosine); scores are relevance in ``[0, 1]``.

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

    Build, search, save and reopen:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            embeddings = ImageEmbeddings("timm:efficientnet_lite0")
            store = FAISSImageStore(embeddings, "index")            # new or existing
            store.add_documents(ImageDirectoryLoader("photos").load())
            store.save()
            docs = store.similarity_search_by_image("photos/chelsea.jpg", k=3)

            store = FAISSImageStore.load("index")                  # the model comes from the manifest
            retriever = store.as_retriever(search_kwargs={"k": 3})
    """

    def __init__(self, embeddings: Embeddings, path: str | os.PathLike[str] | None = None) -> None:
        require("faiss", "faiss-cpu")
        super().__init__(embeddings)
        self.path = None if path is None else Path(path)
        self._index: Any = None  # faiss.IndexFlatIP, made when the dimension is known
        self._ids: list[str] = []  # row -> id
        self._row: dict[str, int] = {}  # id -> row
        self._docs: dict[str, Document] = {}
        self._dim: int | None = None
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
        cls, path: str | os.PathLike[str], embeddings: Embeddings | None = None
    ) -> FAISSImageStore:
        """Open a saved store; with no ``embeddings``, the recorded image model is created.

        Loading takes no lock: a writer replacing the store meanwhile is detected (its
        manifest changed) and the load is retried on the new generation.

        Raises:
            StoreError: Missing, torn or corrupt files.
            ModelMismatchError: ``embeddings`` is not the model that wrote the store.
        """
        if not (Path(path) / MANIFEST).exists():
            _refuse_stock_folder(Path(path))
        manifest = read_manifest(path)
        if embeddings is None:
            embeddings = _recorded_image_model(Path(path), manifest)
        return cls(embeddings, path)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], embeddings: Embeddings | None = None
    ) -> FAISSImageStore:
        """Load the store at ``path`` if there is one, else create an empty one there.

        Raises:
            StoreError: ``path`` is a stock LangChain FAISS folder (see
                :meth:`import_langchain_faiss`), or there is no store and no model.
        """
        if (Path(path) / MANIFEST).exists():
            return cls.load(path, embeddings)
        _refuse_stock_folder(Path(path))
        if embeddings is None:
            raise StoreError(f"no FAISS image store at {path}: give a model to create one")
        return cls(embeddings, path)

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

    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        import numpy as np

        self._check_model(manifest.get("model") or {}, f"FAISS store {folder}")
        files = {}
        for key in ("vectors", "documents"):
            entry = manifest.get(key) or {}
            file = folder / str(entry.get("file", ""))
            if not file.is_file():
                raise StoreError(f"FAISS store {folder}: {key} file {file.name!r} is missing")
            if sha256_file(file) != entry.get("sha256"):
                raise StoreError(
                    f"FAISS store {folder}: {file.name} is corrupt (checksum mismatch)"
                )
            files[key] = file
        try:
            vectors = np.load(files["vectors"], allow_pickle=False)
            records = json.loads(files["documents"].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"FAISS store {folder}: unreadable data: {exc}") from exc
        dim = manifest.get("dim")
        if (
            vectors.ndim != 2
            or vectors.shape[0] != len(records)
            or (self._dim is not None and vectors.shape[1] != self._dim)
            or (dim is not None and vectors.shape[1] != int(dim))
        ):
            raise StoreError(
                f"FAISS store {folder}: {vectors.shape} vectors for {len(records)} documents"
            )
        self._index, self._ids, self._row, self._docs = None, [], {}, {}
        if dim is not None:
            self._dim = int(dim)
        if len(records):
            self._add_rows(
                [r["id"] for r in records],
                vectors.astype(np.float32, copy=False),
                [
                    Document(id=r["id"], page_content=r["page_content"], metadata=r["metadata"])
                    for r in records
                ],
            )
        self._generation = int(manifest.get("generation", 0))

    # -- primitives ----------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the vectors (``None`` for an empty store of a text model)."""
        return self._dim

    def _flat_index(self, dim: int) -> Any:
        """The ``IndexFlatIP`` of ``dim`` (made on first write when the model is a text one)."""
        if self._index is None:
            faiss = require("faiss", "faiss-cpu")
            self._index = faiss.IndexFlatIP(int(dim))
            self._dim = int(dim)
        return self._index

    def __len__(self) -> int:
        return len(self._ids)

    def records(self) -> dict[str, dict[str, Any]]:
        return {i: dict(self._docs[i].metadata) for i in self._ids}

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
        self._add_rows(ids, vectors, documents)

    def _add_rows(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        import numpy as np

        index = self._flat_index(int(vectors.shape[1]))
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        for i, doc in zip(ids, documents, strict=True):
            self._row[i] = len(self._ids)
            self._ids.append(i)
            self._docs[i] = Document(
                id=i, page_content=doc.page_content, metadata=dict(doc.metadata)
            )

    def _delete_ids(self, ids: Sequence[str]) -> None:
        import numpy as np

        rows = sorted({self._row[i] for i in ids if i in self._row})
        if not rows:
            return
        self._index.remove_ids(np.asarray(rows, dtype=np.int64))  # a flat index compacts in order
        gone = set(rows)
        self._ids = [i for row, i in enumerate(self._ids) if row not in gone]
        self._row = {i: row for row, i in enumerate(self._ids)}
        for i in ids:
            self._docs.pop(i, None)

    def _update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        for i, meta in zip(ids, metadatas, strict=True):
            if i in self._docs:
                old = self._docs[i]
                self._docs[i] = Document(id=i, page_content=old.page_content, metadata=dict(meta))

    def _search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """Exact search; with a filter, over exactly the matching rows (never fewer than k)."""
        import numpy as np

        if not self._ids:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        params = None
        candidates = len(self._ids)
        if filter is not None:
            faiss = require("faiss", "faiss-cpu")
            rows = [
                r
                for r, i in enumerate(self._ids)
                if metadata_matches(self._docs[i].metadata, filter)
            ]
            if not rows:
                return []
            params = faiss.SearchParameters(
                sel=faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64))
            )
            candidates = len(rows)
        scores, rows_found = self._index.search(query, min(k, candidates), params=params)
        return [
            (_copy(self._docs[self._ids[int(r)]]), float(s))
            for s, r in zip(scores[0], rows_found[0], strict=True)
            if r >= 0
        ]

    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
        import numpy as np

        if self._index is None or not ids:
            return np.zeros((0, self._dim or 0), np.float32)
        return np.stack([self._index.reconstruct(self._row[i]) for i in ids])

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

        Raises:
            StoreLockedError: Another process writes the folder.
            StoreError: No folder, or the folder was saved by another writer meanwhile.
        """
        import numpy as np

        if path is not None and (self.path is None or Path(path) != self.path):
            self.close()
            self.path = Path(path)
            self._generation = None
            with contextlib.suppress(StoreError):  # saving to another folder replaces it
                self._generation = int(read_manifest(self.path).get("generation", 0))
        if self.path is None:
            raise StoreError("this FAISS store has no folder: pass save(path)")
        folder = self.path
        self.acquire_write_lock()
        self._check_generation(folder)
        generation = (self._generation or 0) + 1
        token = f"{generation:08d}-{uuid.uuid4().hex[:8]}"
        ids = list(self._ids)
        n = len(ids)
        dim = int(self._dim or 0)
        vectors = self._index.reconstruct_n(0, n) if n else np.zeros((0, dim), np.float32)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if n and bad_vector_rows(vectors):
            raise StoreError(f"FAISS store {folder}: refusing to save NaN/inf or zero vectors")
        vec_file = folder / f"vectors-{token}.npy"

        def write_vectors(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, vectors, allow_pickle=False)

        write_atomic_with(vec_file, write_vectors)
        docs = self._docs
        payload = [
            {"id": i, "page_content": docs[i].page_content, "metadata": docs[i].metadata}
            for i in ids
        ]
        doc_file = folder / f"documents-{token}.json"
        write_atomic(doc_file, json.dumps(payload).encode("utf-8"))
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "generation": generation,
            "model": self._model_record(),
            "count": n,
            "dim": self._dim,
            "metric": "inner_product",
            "vectors": {"file": vec_file.name, "sha256": sha256_file(vec_file)},
            "documents": {"file": doc_file.name, "sha256": sha256_file(doc_file)},
        }
        write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
        self._generation = generation
        keep = {MANIFEST, vec_file.name, doc_file.name}
        for old in folder.iterdir():  # older generations, leftovers of interrupted saves
            if old.name not in keep and _DATA_FILE.match(old.name):
                with contextlib.suppress(OSError):
                    old.unlink()
        return folder

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
