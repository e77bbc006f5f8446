"""FAISS image store: stock LangChain ``FAISS`` over inner product, saved without pickle.

On disk a store is a folder with ``manifest.json`` (format, model record, counts and the
SHA-256 of each data file), ``vectors-<token>.npy`` (``float32``, one row per vector) and
``documents-<token>.json`` (ids, URIs, metadata, in row order). Saving writes new data
files, fsyncs them, then atomically replaces the manifest: a kill at any moment leaves
either the old or the new store, never a torn one. Loading never unpickles anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores.base import (
    AddResult,
    ImageVectorStore,
    check_model,
    model_record,
    relevance_from_cosine,
)

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.vectorstores import VectorStore

    from langchain_image_embeddings.embeddings import ImageEmbeddings

FORMAT = "langchain-image-embeddings/faiss"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
    """Images in a FAISS index (exact inner product on normalised vectors).

    Setup:
        .. code-block:: bash

            pip install "langchain-image-embeddings[faiss,timm]"

    Key init args:
        embeddings: ImageEmbeddings
            The model; its spec and fingerprint are recorded and checked on reopen.
        path: str | Path | None
            The store's folder (``None``: in memory until :meth:`save` is given a path).

    Build, search, save and reopen:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            embeddings = ImageEmbeddings("timm:efficientnet_lite0")
            store = FAISSImageStore.open("index", embeddings)     # new or existing
            store.add_images(ImageDirectoryLoader("photos").load())
            store.save()
            hits = store.search_by_image("query.jpg", k=3)          # [(Document, score)]

            store = FAISSImageStore.load("index")                  # the model comes from the manifest
            retriever = store.vectorstore.as_retriever()           # stock LangChain retriever
    """

    def __init__(
        self, embeddings: ImageEmbeddings, path: str | os.PathLike[str] | None = None
    ) -> None:
        faiss = require("faiss", "faiss-cpu")
        from langchain_community.docstore.in_memory import InMemoryDocstore
        from langchain_community.vectorstores import FAISS
        from langchain_community.vectorstores.utils import DistanceStrategy

        self.embeddings = embeddings
        self.path = None if path is None else Path(path)
        self._record = model_record(embeddings)
        self._faiss = FAISS(
            embedding_function=self.document_embeddings,
            index=faiss.IndexFlatIP(int(embeddings.dim)),
            docstore=InMemoryDocstore(),
            index_to_docstore_id={},
            relevance_score_fn=relevance_from_cosine,
            distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        )

    @property
    def _docstore(self) -> Any:
        return self._faiss.docstore

    # -- construction --------------------------------------------------------------------
    @classmethod
    def load(
        cls, path: str | os.PathLike[str], embeddings: ImageEmbeddings | None = None
    ) -> FAISSImageStore:
        """Open a saved store; with no ``embeddings``, the recorded model is created.

        Raises:
            StoreError: Missing, torn or corrupt files.
            ModelMismatchError: ``embeddings`` is not the model that wrote the store.
        """
        import numpy as np

        folder = Path(path)
        manifest = read_manifest(folder)
        stored = manifest.get("model", {})
        if embeddings is None:
            from langchain_image_embeddings.embeddings import ImageEmbeddings

            embeddings = ImageEmbeddings(str(stored.get("model")))
        check_model(stored, embeddings, f"FAISS store {folder}")
        files = {}
        for key in ("vectors", "documents"):
            entry = manifest.get(key) or {}
            file = folder / str(entry.get("file", ""))
            if not file.is_file():
                raise StoreError(f"FAISS store {folder}: {key} file {file.name!r} is missing")
            if _sha256_file(file) != entry.get("sha256"):
                raise StoreError(
                    f"FAISS store {folder}: {file.name} is corrupt (checksum mismatch)"
                )
            files[key] = file
        try:
            vectors = np.load(files["vectors"], allow_pickle=False)
            records = json.loads(files["documents"].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"FAISS store {folder}: unreadable data: {exc}") from exc
        if (
            vectors.ndim != 2
            or vectors.shape[0] != len(records)
            or vectors.shape[1] != embeddings.dim
        ):
            raise StoreError(
                f"FAISS store {folder}: {vectors.shape} vectors for {len(records)} documents"
            )
        store = cls(embeddings, folder)
        if len(records):
            store.upsert_vectors(
                [r["id"] for r in records],
                vectors.astype(np.float32, copy=False),
                [
                    Document(id=r["id"], page_content=r["page_content"], metadata=r["metadata"])
                    for r in records
                ],
            )
        return store

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], embeddings: ImageEmbeddings | None = None
    ) -> FAISSImageStore:
        """Load the store at ``path`` if there is one, else create an empty one there."""
        if (Path(path) / MANIFEST).exists():
            return cls.load(path, embeddings)
        if embeddings is None:
            raise StoreError(f"no FAISS image store at {path}: give a model to create one")
        return cls(embeddings, path)

    @classmethod
    def from_images(
        cls,
        images: Iterable[Document | str | os.PathLike[str]],
        embeddings: ImageEmbeddings,
        path: str | os.PathLike[str] | None = None,
    ) -> FAISSImageStore:
        """Build a store from image documents, paths or URIs (saved if ``path`` is given)."""
        store = cls(embeddings, path)
        result: AddResult = store.add_images(images)
        store.last_add = result
        if path is not None:
            store.save()
        return store

    last_add: AddResult | None = None

    # -- primitives ----------------------------------------------------------------------
    @property
    def vectorstore(self) -> VectorStore:
        """The stock ``langchain_community`` FAISS store (relevance scores fixed to [0, 1])."""
        store: VectorStore = self._faiss
        return store

    def __len__(self) -> int:
        return int(self._faiss.index.ntotal)

    def _ids_in_order(self) -> list[str]:
        mapping: dict[int, str] = self._faiss.index_to_docstore_id
        return [mapping[i] for i in range(len(mapping))]

    def records(self) -> dict[str, dict[str, Any]]:
        docs = self._docstore._dict
        return {i: dict(docs[i].metadata) for i in self._ids_in_order()}

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        docs = self._docstore._dict
        return {i for i in ids if i in docs}

    def upsert_vectors(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        import numpy as np

        if len(ids) != len(vectors) or len(ids) != len(documents):
            raise ValueError("ids, vectors and documents must have the same length")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in one write")
        present = list(self.existing_ids(ids))
        if present:
            self.delete(present)
        start = len(self._faiss.index_to_docstore_id)
        self._faiss.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._docstore.add(
            {
                i: Document(id=i, page_content=d.page_content, metadata=dict(d.metadata))
                for i, d in zip(ids, documents, strict=True)
            }
        )
        self._faiss.index_to_docstore_id.update({start + j: i for j, i in enumerate(ids)})

    def delete(self, ids: Sequence[str]) -> None:
        present = list(self.existing_ids(ids))
        if present:
            self._faiss.delete(present)

    def search_by_vector_with_cosine(
        self,
        vector: Sequence[float],
        k: int,
        *,
        filter: dict[str, Any] | None = None,
        fetch_k: int = 20,
    ) -> list[tuple[Document, float]]:
        hits: list[tuple[Document, float]] = self._faiss.similarity_search_with_score_by_vector(
            [float(x) for x in vector], k=k, filter=filter, fetch_k=fetch_k
        )
        return [(doc, float(score)) for doc, score in hits]

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the store to ``path`` (or its own folder) atomically; returns the folder."""
        import numpy as np

        if path is not None:
            self.path = Path(path)
        if self.path is None:
            raise StoreError("this FAISS store has no folder: pass save(path)")
        folder = self.path
        folder.mkdir(parents=True, exist_ok=True)
        old = {}
        with contextlib.suppress(StoreError):
            old = read_manifest(folder)
        token = uuid.uuid4().hex[:12]
        ids = self._ids_in_order()
        n = len(ids)
        dim = int(self.embeddings.dim)
        vectors = self._faiss.index.reconstruct_n(0, n) if n else np.zeros((0, dim), np.float32)
        vec_file = folder / f"vectors-{token}.npy"
        with open(vec_file, "wb") as fh:
            np.save(fh, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        docs = self._docstore._dict
        payload = [
            {"id": i, "page_content": docs[i].page_content, "metadata": docs[i].metadata}
            for i in ids
        ]
        doc_file = folder / f"documents-{token}.json"
        _write_durable(doc_file, json.dumps(payload).encode("utf-8"))
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": self._record,
            "count": n,
            "dim": dim,
            "metric": "inner_product",
            "vectors": {"file": vec_file.name, "sha256": _sha256_file(vec_file)},
            "documents": {"file": doc_file.name, "sha256": _sha256_file(doc_file)},
        }
        tmp = folder / f"{MANIFEST}.{token}.tmp"
        _write_durable(tmp, json.dumps(manifest, indent=2).encode("utf-8"))
        os.replace(tmp, folder / MANIFEST)
        _fsync_dir(folder)
        for key in ("vectors", "documents"):
            name = (old.get(key) or {}).get("file")
            if name and name not in (vec_file.name, doc_file.name):
                with contextlib.suppress(OSError):
                    (folder / name).unlink()
        return folder

    def persist(self) -> None:
        """Save to the store's folder (no-op for an in-memory store)."""
        if self.path is not None:
            self.save()
