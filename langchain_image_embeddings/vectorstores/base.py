"""What the image stores share: the LangChain ``VectorStore`` contract and image-aware writes.

An image store is a :class:`langchain_core.vectorstores.VectorStore` over normalised
vectors (cosine), whose scores are relevance in ``[0, 1]`` everywhere
(``similarity_search_with_score``, ``..._with_relevance_scores``, the retrievers). It
accepts **any** ``Embeddings``: with a text model it is an ordinary LangChain store
(``add_texts`` embeds texts, random ids unless given). With an image model
(:class:`~langchain_image_embeddings.ImageEmbeddings`) a document's ``page_content`` is
the image's URI, as in :class:`~langchain_image_embeddings.document_embeddings.ImageDocumentEmbeddings`:
documents are embedded as images under content ids (file hash + model), the model's
fingerprint is recorded and checked, text queries go through the CLIP text tower and
``similarity_search_by_image`` takes any image input.

Backends implement a few storage primitives (``_write``, ``_delete_ids``, ``_search``, ...);
everything else lives here once.
"""

from __future__ import annotations

import os
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from langchain_image_embeddings.errors import EncoderError, ImageLoadError
from langchain_image_embeddings.vectorstores.locking import StoreLock
from langchain_image_embeddings.vectorstores.records import (
    BAD_VECTOR_CODE,
    MIN_NORM,
    SOURCES_KEY,
    WRITE_BATCH,
    AddResult,
    PendingAdd,
    bad_vector_rows,
    check_model,
    check_vectors,
    content_id,
    image_embeddings_of,
    model_record,
    record_paths,
    relevance_from_cosine,
    to_image_documents,
    unit_rows,
    with_paths,
)

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    from langchain_core.embeddings import Embeddings
    from typing_extensions import Self

    from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.images import ImageInput

__all__ = [
    "BAD_VECTOR_CODE",
    "MIN_NORM",
    "SOURCES_KEY",
    "WRITE_BATCH",
    "AddResult",
    "ImageVectorStore",
    "PendingAdd",
    "bad_vector_rows",
    "check_model",
    "check_vectors",
    "content_id",
    "model_record",
    "record_paths",
    "relevance_from_cosine",
]

ImageItem = Document | str | os.PathLike[str]


class ImageVectorStore(VectorStore, ABC):
    """Base of the image stores: a LangChain ``VectorStore`` with image-aware writes.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore(ImageEmbeddings("timm:efficientnet_lite0"), "index")
            store.add_documents(ImageDirectoryLoader("photos").load())   # embedded as images
            store.similarity_search_by_image("query.jpg", k=1)          # [Document]
            store.as_retriever(search_kwargs={"k": 3})                  # any LangChain chain
    """

    def __init__(self, embeddings: Embeddings) -> None:
        self._embedding = embeddings
        self._image_embeddings = image_embeddings_of(embeddings)
        self._writer_lock: StoreLock | None = None
        self._lock_release: weakref.finalize[Any, Any] | None = None

    # -- the model -----------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        """The model given at construction (any LangChain ``Embeddings``)."""
        return self._embedding

    @property
    def embeds_images(self) -> bool:
        """Whether the model embeds images (documents are then image URIs)."""
        return self._image_embeddings is not None

    @property
    def image_embeddings(self) -> ImageEmbeddings:
        """The image model.

        Raises:
            EncoderError: The store was built with a text-only ``Embeddings``.
        """
        if self._image_embeddings is None:
            raise EncoderError(
                f"this store embeds with {type(self._embedding).__name__}, which cannot embed "
                "images: build it with ImageEmbeddings for image documents and image queries"
            )
        return self._image_embeddings

    @property
    def document_embeddings(self) -> ImageDocumentEmbeddings:
        """The image-document view of the model, for stock LangChain stores."""
        from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings

        image = self.image_embeddings
        return ImageDocumentEmbeddings(image, query="text" if image.supports_text else "image")

    @property
    def vectorstore(self) -> VectorStore:
        """This store (kept for code written when the stores wrapped a stock one)."""
        return self

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Every score this store returns is already relevance in [0, 1].
        return lambda score: score

    # -- backend primitives --------------------------------------------------------------
    @property
    @abstractmethod
    def dim(self) -> int | None:
        """Dimension of the stored vectors (``None`` until known)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of vectors in the store."""

    @abstractmethod
    def records(self) -> dict[str, dict[str, Any]]:
        """Every stored id with its metadata."""

    @abstractmethod
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents by id (missing ids are left out)."""

    @abstractmethod
    def _write(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        """Upsert checked unit vectors; the writer lock is held."""

    @abstractmethod
    def _delete_ids(self, ids: Sequence[str]) -> None:
        """Remove these ids (unknown ones ignored); the writer lock is held."""

    @abstractmethod
    def _update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Replace the metadata of existing records, keeping their vectors."""

    @abstractmethod
    def _search(
        self, vector: np.ndarray, k: int, filter: Any, fetch_k: int
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents to a unit vector with their cosine, best first."""

    @abstractmethod
    def _vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored (unit) vectors of these ids, in order."""

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` present in the store."""
        return {d.id for d in self.get_by_ids(list(ids)) if d.id is not None}

    def persist(self) -> None:
        """Make writes durable (FAISS saves to its folder; Chroma writes through)."""

    # -- one writer per folder (the lock lives here once; stores say which folder) --------
    def _lock_dir(self) -> Path | None:
        """The folder whose writer lock writes take; ``None``: no lock (a server store)."""
        return None

    def _on_locked(self) -> None:
        """Checks once the lock is held (FAISS: nobody saved over the loaded generation)."""

    def _release(self) -> None:
        """What :meth:`close` frees besides the lock (Milvus: a connection it opened)."""

    def acquire_write_lock(self) -> None:
        """Become this store's only writer now (writes take the lock anyway, lazily).

        A no-op for stores without a folder (servers serialise writes themselves). The lock
        is released by :meth:`close`, when the store is garbage-collected, or when the
        process ends (``kill -9`` included).

        Raises:
            StoreLockedError: Another process is writing the store.
            StoreError: A check made once the lock is held failed (then it is released).
        """
        folder = self._lock_dir()
        if folder is None or (self._writer_lock is not None and self._writer_lock.held):
            return
        lock = StoreLock(folder)
        lock.acquire()
        self._writer_lock = lock
        self._lock_release = weakref.finalize(self, lock.release)
        try:
            self._on_locked()
        except BaseException:
            self._release_lock()
            raise

    def _release_lock(self) -> None:
        if self._lock_release is not None:
            self._lock_release()
        self._lock_release = None
        self._writer_lock = None

    def close(self) -> None:
        """Release the writer lock, if held, and what the store opened (unsaved FAISS
        changes are not saved)."""
        self._release_lock()
        self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- vector writes -------------------------------------------------------------------
    def upsert_vectors(
        self, ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
    ) -> None:
        """Write vectors (one row per id) under ``ids``, replacing existing ones.

        Rows are normalised to unit length (the stores compare by cosine).

        Raises:
            StoreError: A wrong shape, or NaN/inf/zero rows (naming the ids); nothing written.
        """
        import numpy as np

        if len(ids) != len(vectors) or len(ids) != len(documents):
            raise ValueError("ids, vectors and documents must have the same length")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in one write")
        if not len(ids):
            return
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        check_vectors(ids, matrix, self.dim)
        self.acquire_write_lock()
        self._write(list(ids), unit_rows(matrix), list(documents))

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete records by id (unknown ids are ignored); ``ids=None`` deletes every record.

        Returns:
            True.
        """
        if ids is None:
            ids = list(self.records())
        if ids:
            self.acquire_write_lock()
            self._delete_ids(list(ids))
        return True

    # -- LangChain writes ----------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert texts; with an image model the texts are image URIs.

        Ids default to content ids (image model) or random UUIDs (text model); a given id
        replaces the record under it. With an image model nothing is written if any image
        cannot be read (the first failure is raised, naming the input and its index).

        Raises:
            ImageLoadError: An image URI that cannot be read or embedded.
        """
        import numpy as np

        texts = list(texts)
        metas = [dict(m or {}) for m in metadatas] if metadatas else [{} for _ in texts]
        given: list[str | None] = list(ids) if ids else [None] * len(texts)
        if len(metas) != len(texts) or len(given) != len(texts):
            raise ValueError("texts, metadatas and ids must have the same length")
        if not texts:
            return []
        if self.embeds_images:
            return self._add_image_uris(texts, metas, given)
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        final = [i or str(uuid.uuid4()) for i in given]
        unique = {i: row for row, i in enumerate(final)}  # the last of a repeated id wins
        rows = list(unique.values())
        docs = [Document(id=final[r], page_content=texts[r], metadata=metas[r]) for r in rows]
        self.upsert_vectors([final[r] for r in rows], vectors[rows], docs)
        return final

    def _add_image_uris(
        self, uris: list[str], metas: list[dict[str, Any]], given: list[str | None]
    ) -> list[str]:
        image = self.image_embeddings
        if not any(given):
            items = [Document(page_content=u, metadata=m) for u, m in zip(uris, metas, strict=True)]
            pending = self.prepare_add(items)
            self._raise_failures(pending.result.failures, len(uris))
            self.commit_add(pending)
            return pending.result.input_ids
        docs = to_image_documents(
            [Document(page_content=u, metadata=m) for u, m in zip(uris, metas, strict=True)],
            image.load_options,
        )
        final = [given[i] or content_id(d.metadata["sha256"], image.model_id) for i, d in docs]
        result = AddResult()
        unique = {i: row for row, i in enumerate(final)}
        chunk = [(final[r], docs[r][1]) for r in unique.values()]
        written, vectors, wdocs = self._embed_chunk(chunk, 0, result)
        self._raise_failures(result.failures, len(uris))
        self.upsert_vectors(written, vectors, wdocs)
        return [str(i) for i in final]

    @staticmethod
    def _raise_failures(failures: list[ImageLoadError], total: int) -> None:
        if failures:
            first = failures[0]
            more = f" ({len(failures)} of {total} inputs failed)" if len(failures) > 1 else ""
            raise ImageLoadError(
                first.source, f"{first.reason}; nothing was written{more}", first.code, first.index
            )

    # -- image writes --------------------------------------------------------------------
    def _embed_chunk(
        self, chunk: Sequence[tuple[str, Document]], offset: int, result: AddResult
    ) -> tuple[list[str], np.ndarray, list[Document]]:
        """Embed a chunk; unreadable images and NaN/inf/zero vectors go to ``failures``."""
        import numpy as np

        image = self.image_embeddings
        embedded = image.try_embed_images([d.page_content for _, d in chunk])
        failures = [err.with_index(offset + (err.index or 0)) for err in embedded.errors]
        vectors = np.ascontiguousarray(embedded.vectors, dtype=np.float32)
        bad = bad_vector_rows(vectors) if len(embedded.indices) else {}
        keep: list[int] = []
        for row, i in enumerate(embedded.indices):
            if row in bad:
                failures.append(
                    ImageLoadError(chunk[i][1].page_content, bad[row], BAD_VECTOR_CODE, offset + i)
                )
            else:
                keep.append(row)
        result.failures.extend(sorted(failures, key=lambda e: e.index or 0))
        if not keep:
            return [], np.zeros((0, int(image.dim)), np.float32), []
        picked = [chunk[embedded.indices[r]] for r in keep]
        docs = [Document(id=i, page_content=d.page_content, metadata=d.metadata) for i, d in picked]
        return [i for i, _ in picked], vectors[keep], docs

    def _plan(
        self, images: Iterable[ImageItem], replace_changed: bool
    ) -> tuple[AddResult, list[tuple[str, Document]], dict[str, list[str]], dict[str, str]]:
        """Group inputs by content id; find what to embed, what to relink, what moves."""
        image = self.image_embeddings
        result = AddResult()
        docs = to_image_documents(images, image.load_options, result.failures)
        groups: dict[str, list[Document]] = {}
        result.input_ids = []
        for _, doc in docs:
            cid = content_id(doc.metadata["sha256"], image.model_id)
            groups.setdefault(cid, []).append(doc)
            result.input_ids.append(cid)
        present = {d.id: d for d in self.get_by_ids(list(groups))} if groups else {}
        todo: list[tuple[str, Document]] = []
        relinked: dict[str, list[str]] = {}
        for cid, group in groups.items():
            paths = list(dict.fromkeys(str(d.metadata["source"]) for d in group))
            old = present.get(cid)
            if old is None:
                first = group[0]
                todo.append(
                    (
                        cid,
                        Document(
                            page_content=first.page_content,
                            metadata=with_paths(first.metadata, paths),
                        ),
                    )
                )
                primary = paths[0]
            else:
                result.skipped.append(cid)
                known = record_paths(old.metadata)
                if any(p not in known for p in paths):
                    relinked[cid] = known + [p for p in paths if p not in known]
                primary = str(old.metadata.get("source", known[0] if known else paths[0]))
            for path in paths:
                if path != primary:
                    result.duplicates[path] = primary
        moved: dict[str, str] = {}
        if replace_changed and (todo or relinked):
            owner = {p: i for i, meta in self.records().items() for p in record_paths(meta)}
            for cid, group in groups.items():
                for doc in group:
                    path = str(doc.metadata["source"])
                    if owner.get(path) not in (None, cid):
                        moved[path] = owner[path]
        return result, todo, relinked, moved

    def remove_paths(
        self, paths: Iterable[str], *, owners: dict[str, str] | None = None
    ) -> list[str]:
        """Take paths out of the records that list them; delete records left with none.

        Returns:
            Ids of the records deleted.
        """
        if owners is None:
            wanted = set(paths)
            owners = {
                p: i
                for i, meta in self.records().items()
                for p in record_paths(meta)
                if p in wanted
            }
        else:
            owners = {p: owners[p] for p in paths if p in owners}
        by_id: dict[str, set[str]] = {}
        for path, rid in owners.items():
            by_id.setdefault(rid, set()).add(path)
        if not by_id:
            return []
        docs = {d.id: d for d in self.get_by_ids(list(by_id))}
        deleted: list[str] = []
        updates: dict[str, dict[str, Any]] = {}
        for rid, gone in by_id.items():
            doc = docs.get(rid)
            if doc is None:
                continue
            left = [p for p in record_paths(doc.metadata) if p not in gone]
            if left:
                meta = with_paths(doc.metadata, left)
                updates[rid] = meta
            else:
                deleted.append(rid)
        if updates:
            self.acquire_write_lock()
            self._update_metadata(list(updates), list(updates.values()))
        if deleted:
            self.delete(deleted)
        return deleted

    def _relink(self, relinked: dict[str, list[str]]) -> None:
        if not relinked:
            return
        docs = {d.id: d for d in self.get_by_ids(list(relinked))}
        ids = [i for i in relinked if i in docs]
        self.acquire_write_lock()
        self._update_metadata(ids, [with_paths(docs[i].metadata, relinked[i]) for i in ids])

    def add_images(
        self,
        images: Iterable[ImageItem],
        *,
        replace_changed: bool = True,
        all_or_nothing: bool = False,
    ) -> AddResult:
        """Embed and add images not already in the store.

        Identical bytes at several paths share one vector: the record lists every path in
        ``sources`` and the result names the extra paths in ``duplicates``. One unreadable
        image, or one whose vector is NaN/inf or zero, is reported in ``failures`` and never
        written; the others are written in batches.

        Args:
            images: Image documents (from the loaders), paths or URIs.
            replace_changed: A path whose bytes changed leaves its old record (deleted when
                no other path shares it).
            all_or_nothing: Embed everything first and write nothing at all if any image
                failed (``result.committed`` is then false). Holds every new vector in
                memory until the write.

        Returns:
            What was added, skipped, replaced, found duplicated and what failed.

        Raises:
            EncoderError: The store's model does not embed images.
            StoreLockedError: Another process is writing the store.
        """
        if all_or_nothing:
            pending = self.prepare_add(images, replace_changed=replace_changed)
            if pending.result.failures:
                pending.result.committed = False
                return pending.result
            return self.commit_add(pending)
        result, todo, relinked, moved = self._plan(images, replace_changed)
        for start in range(0, len(todo), WRITE_BATCH):
            ids, vectors, written = self._embed_chunk(
                todo[start : start + WRITE_BATCH], start, result
            )
            if ids:
                self.upsert_vectors(ids, vectors, written)
                result.added.extend(ids)
        self._finish_add(result, relinked, moved)
        return result

    def _finish_add(
        self, result: AddResult, relinked: dict[str, list[str]], moved: dict[str, str]
    ) -> None:
        self._relink(relinked)
        failed = {e.source for e in result.failures}
        moving = [p for p in moved if p not in failed]
        result.replaced.extend(self.remove_paths(moving, owners=moved))

    def prepare_add(
        self, images: Iterable[ImageItem], *, replace_changed: bool = True
    ) -> PendingAdd:
        """Embed the images :meth:`add_images` would add, without writing anything."""
        import numpy as np

        result, todo, relinked, moved = self._plan(images, replace_changed)
        ids: list[str] = []
        parts: list[np.ndarray] = []
        docs: list[Document] = []
        for start in range(0, len(todo), WRITE_BATCH):
            chunk_ids, vectors, written = self._embed_chunk(
                todo[start : start + WRITE_BATCH], start, result
            )
            ids.extend(chunk_ids)
            parts.append(vectors)
            docs.extend(written)
        dim = int(self.image_embeddings.dim)
        matrix = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        return PendingAdd(ids, matrix, docs, relinked, moved, result)

    def commit_add(self, pending: PendingAdd) -> AddResult:
        """Write what :meth:`prepare_add` embedded (in batches) and relink moved paths."""
        result = pending.result
        for start in range(0, len(pending.ids), WRITE_BATCH):
            stop = start + WRITE_BATCH
            self.upsert_vectors(
                pending.ids[start:stop], pending.vectors[start:stop], pending.documents[start:stop]
            )
            result.added.extend(pending.ids[start:stop])
        self._finish_add(result, pending.relinked, pending.moved)
        result.committed = True
        return result

    # -- searches ------------------------------------------------------------------------
    def text_query_vector(self, query: str) -> list[float]:
        """The vector a text query is searched with (CLIP text tower for image models).

        Raises:
            EncoderError: An image model without a text tower.
        """
        image = self._image_embeddings
        if image is not None and not image.supports_text:
            raise EncoderError(
                f"{image.model_id} has no text tower, so it cannot embed the text query "
                f"{query[:60]!r}: search by image (similarity_search_by_image) or use a CLIP-type "
                "model"
            )
        return list(self._embedding.embed_query(query))

    def image_query_vector(self, image: ImageInput) -> list[float]:
        """The vector a query image (any supported input) is searched with."""
        return list(self.image_embeddings.embed_images([image])[0])

    def similarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Any = None,
        *,
        fetch_k: int = 20,
        score_threshold: float | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Nearest documents with relevance scores in ``[0, 1]`` (1 = same direction).

        Args:
            embedding: The query vector (normalised here).
            k: Number of documents.
            filter: Metadata filter (``{"format": "PNG"}``; backend operators allowed).
            fetch_k: Candidates fetched before filtering (FAISS).
            score_threshold: Drop hits whose relevance is below this.
        """
        import numpy as np

        if k <= 0 or len(self) == 0:
            return []
        query = unit_rows(np.asarray([embedding], dtype=np.float32))[0]
        hits = self._search(query, k, filter, max(fetch_k, k))
        scored = [(doc, relevance_from_cosine(cos)) for doc, cos in hits]
        if score_threshold is not None:
            scored = [(d, s) for d, s in scored if s >= score_threshold]
        return scored[:k]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """Nearest documents to a vector."""
        hits = self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        return [doc for doc, _ in hits]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Text query with relevance scores in ``[0, 1]``.

        Raises:
            EncoderError: An image model without a text tower.
        """
        return self.similarity_search_with_score_by_vector(
            self.text_query_vector(query), k, filter, **kwargs
        )

    def similarity_search(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """Documents nearest to a text query (CLIP text tower for image models)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_image_with_relevance_score(
        self, image: ImageInput | None = None, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Image query (path, URL, ``data:`` URI, bytes, PIL image, array) with relevance scores.

        ``uri=`` is accepted for ``image=`` (langchain-chroma's name).
        """
        if image is None:
            image = kwargs.pop("uri", None)
        if image is None:
            raise TypeError("give the query image (image=... or uri=...)")
        return self.similarity_search_with_score_by_vector(
            self.image_query_vector(image), k, filter, **kwargs
        )

    def similarity_search_by_image(
        self, image: ImageInput | None = None, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """Documents nearest to a query image (any supported image input)."""
        hits = self.similarity_search_by_image_with_relevance_score(image, k, filter, **kwargs)
        return [doc for doc, _ in hits]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Maximal-marginal-relevance search: relevant but diverse documents."""
        import numpy as np
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        if k <= 0 or len(self) == 0:
            return []
        query = unit_rows(np.asarray([embedding], dtype=np.float32))[0]
        hits = self._search(query, max(fetch_k, k), filter, max(fetch_k, k))
        if not hits:
            return []
        vectors = self._vectors([str(d.id) for d, _ in hits])
        chosen = maximal_marginal_relevance(query, list(vectors), lambda_mult=lambda_mult, k=k)
        return [hits[i][0] for i in chosen]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR search for a text query."""
        return self.max_marginal_relevance_search_by_vector(
            self.text_query_vector(query), k, fetch_k, lambda_mult, filter, **kwargs
        )

    def max_marginal_relevance_search_by_image(
        self,
        image: ImageInput,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR search for a query image."""
        return self.max_marginal_relevance_search_by_vector(
            self.image_query_vector(image), k, fetch_k, lambda_mult, filter, **kwargs
        )

    # -- short names (the package's own API before the stores were VectorStores) ----------
    def search_by_vector(
        self, vector: Sequence[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score_by_vector`."""
        return self.similarity_search_with_score_by_vector(vector, k, **kwargs)

    def search_by_text(self, text: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score` (text-to-image with CLIP models)."""
        return self.similarity_search_with_score(text, k, **kwargs)

    def search_by_image(
        self, image: ImageInput, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_by_image_with_relevance_score`."""
        return self.similarity_search_by_image_with_relevance_score(image, k, **kwargs)

    def mmr_by_vector(self, vector: Sequence[float], k: int = 4, **kwargs: Any) -> list[Document]:
        """:meth:`max_marginal_relevance_search_by_vector`."""
        return self.max_marginal_relevance_search_by_vector(list(vector), k, **kwargs)

    def _check_model(self, stored: dict[str, Any], where: str) -> None:
        check_model(stored, self._embedding, where)

    def _model_record(self) -> dict[str, Any]:
        record = model_record(self._embedding)
        if "dim" not in record and self.dim is not None:
            record["dim"] = self.dim
        return record

    # -- bulk load (issue 11; the logic lives in scale/load.py) ---------------------------
    def add_from_parquet(
        self, path: str | os.PathLike[str], *, batch_size: int = 4096, replace_changed: bool = False
    ) -> AddResult:
        """Add the vectors of Parquet shards (``imgemb embed-dataset``) without re-embedding.

        Same records as :meth:`add_images`; a shard of another model raises
        ``ModelMismatchError``; rerunning adds nothing. See :func:`~langchain_image_embeddings.scale.load.load_shards`.
        """
        from langchain_image_embeddings.scale.load import load_shards

        return load_shards(
            self, path, batch_size=batch_size, replace_changed=replace_changed
        ).result
