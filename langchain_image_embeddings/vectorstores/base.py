"""The image store: one LangChain ``VectorStore`` over a storage backend.

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

:class:`ImageVectorStore` implements all of that once, over a backend object that only
stores (:class:`~langchain_image_embeddings.vectorstores._backend.StoreBackend`: write,
delete, get, search, scan, count, the model record). The FAISS, Chroma and Milvus stores
are thin subclasses that build their backend and add what only they have (FAISS ``save``,
Milvus ``drop``, ...). Image ingest planning is
:mod:`~langchain_image_embeddings.vectorstores._ingest`; the shared pure helpers (content
ids, relevance, vector checks, model records) are
:mod:`~langchain_image_embeddings.vectorstores._records`.
"""

from __future__ import annotations

import functools
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from langchain_image_embeddings._locks import StoreLock
from langchain_image_embeddings.errors import EncoderError, StoreError
from langchain_image_embeddings.vectorstores._ingest import (
    WRITE_BATCH,
    AddPlan,
    ImageItem,
    embed_chunk,
    plan_add,
    raise_failures,
    to_image_documents,
)
from langchain_image_embeddings.vectorstores._records import (
    MIN_NORM,
    AddResult,
    PendingAdd,
    check_model,
    check_vectors,
    content_id,
    image_embeddings_of,
    model_record,
    record_paths,
    refuse_swapped_arguments,
    relevance_from_cosine,
    unit_rows,
    with_paths,
)

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.embeddings import Embeddings
    from typing_extensions import Self

    from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings, QueryMode
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.images._load import ImageInput
    from langchain_image_embeddings.vectorstores._backend import StoreBackend

__all__ = ["ImageVectorStore"]


class ImageVectorStore(VectorStore):
    """A LangChain ``VectorStore`` with image-aware writes, over a storage backend.

    Use :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore`,
    :class:`~langchain_image_embeddings.vectorstores.ChromaImageStore` or
    :class:`~langchain_image_embeddings.vectorstores.MilvusImageStore`, which build their
    backend; this class is what they share.

    Key init args:
        embeddings: Embeddings
            The model: an ``ImageEmbeddings`` (documents are image URIs, ids are content
            ids, the model fingerprint is recorded and checked) or any LangChain ``Embeddings``.
        backend: StoreBackend
            The storage (``FAISSBackend``, ``ChromaBackend``, ``MilvusBackend``).

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore(ImageEmbeddings("timm:efficientnet_lite0"), "index")
            store.add_documents(ImageDirectoryLoader("photos").load())   # embedded as images
            result = store.add_images(["photos/chelsea.jpg", "photos/copy-of-chelsea.jpg"])
            result.added, result.duplicates, result.failures
            store.similarity_search_by_image("photos/chelsea.jpg", k=1)   # [Document]
            store.as_retriever(search_kwargs={"k": 3})                  # any LangChain chain
    """

    #: How string queries (``similarity_search``, ``as_retriever().invoke``) are read:
    #: ``"auto"`` searches an existing image file or image URI as that image and other
    #: strings as text; ``"text"`` / ``"image"`` force one reading. Per call: ``query_mode=``
    #: (also in ``as_retriever(search_kwargs=...)``).
    query_mode: QueryMode = "auto"
    #: Rows per ``upsert_vectors`` call when :meth:`commit_add` writes (``add_images``,
    #: ``load_shards``); a server store whose requests cost a round trip each raises it.
    write_batch: int = WRITE_BATCH

    def __init__(self, embeddings: Embeddings, backend: StoreBackend) -> None:
        refuse_swapped_arguments(type(self).__name__, embeddings)
        self._embedding = embeddings
        self._image_embeddings = image_embeddings_of(embeddings)
        self.backend = backend
        self._writer_lock: StoreLock | None = None
        self._lock_release: weakref.finalize[Any, Any] | None = None
        stored = backend.read_model_record()
        if stored:
            check_model(stored, embeddings, backend.where)
        elif backend.count() > 0:
            raise StoreError(f"{backend.where} holds vectors from an unknown model")
        backend.open(functools.partial(model_record, embeddings))

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

        return ImageDocumentEmbeddings(self.image_embeddings, query="auto")

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Every score this store returns is already relevance in [0, 1].
        return lambda score: score

    # -- reads ---------------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """Dimension of the stored vectors (``None`` until known)."""
        return self.backend.dim

    def __len__(self) -> int:
        """Number of vectors in the store."""
        return self.backend.count()

    def records(self) -> dict[str, dict[str, Any]]:
        """Every stored id with its metadata."""
        return self.backend.scan()

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents by id (missing ids are left out)."""
        return self.backend.get(list(ids))

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` present in the store."""
        return self.backend.existing_ids(list(ids))

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored unit vectors of these ids, in order (``float32``, one row per id).

        Raises:
            KeyError: An id that is not in the store.
        """
        return self.backend.vectors(list(ids))

    # -- one writer per folder -----------------------------------------------------------
    def acquire_write_lock(self) -> None:
        """Become this store's only writer now (writes take the lock anyway, lazily).

        A no-op for stores without a folder (servers serialise writes themselves). The lock
        is released by :meth:`close`, when the store is garbage-collected, or when the
        process ends (``kill -9`` included).

        Raises:
            StoreLockedError: Another process is writing the store.
            StoreError: A check made once the lock is held failed (then it is released).
        """
        folder = self.backend.lock_dir()
        if folder is None or (self._writer_lock is not None and self._writer_lock.held):
            return
        lock = StoreLock(folder)
        lock.acquire()
        self._writer_lock = lock
        self._lock_release = weakref.finalize(self, lock.release)
        try:
            self.backend.on_locked()
        except BaseException:
            self.release_write_lock()
            raise

    def release_write_lock(self) -> None:
        """Stop being the writer (no-op when not holding the lock); writes take it again."""
        if self._lock_release is not None:
            self._lock_release()
        self._lock_release = None
        self._writer_lock = None

    def persist(self) -> None:
        """Make writes durable (FAISS saves to its folder; Chroma and Milvus write through)."""

    def close(self) -> None:
        """Persist unsaved changes (a FAISS store with a folder saves them), then release the
        writer lock, if held, and what the store opened.

        Leaving a ``with`` block by an exception releases without persisting: a FAISS
        folder keeps its last save, as if the block had not run since.

        Raises:
            StoreLockedError: Another process writes the folder (the store is released).
            StoreError: The folder was saved by another writer meanwhile (released too).
        """
        try:
            if self.backend.has_unsaved_changes():
                self.persist()
        finally:
            self._release()

    def _release(self) -> None:
        try:
            self.release_write_lock()
        finally:
            self.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._release()

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
        self.backend.write(list(ids), unit_rows(matrix), list(documents))

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete records by id (unknown ids are ignored); ``ids=None`` deletes every record.

        Returns:
            True.
        """
        if ids is None:
            ids = list(self.records())
        if ids:
            self.acquire_write_lock()
            self.backend.delete(list(ids))
        return True

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Replace the metadata of existing records, keeping their vectors (unknown ids are
        ignored)."""
        if len(ids) != len(metadatas):
            raise ValueError("ids and metadatas must have the same length")
        if ids:
            self.acquire_write_lock()
            self.backend.update_metadata(list(ids), list(metadatas))

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
            captions = [r for r, m in enumerate(metas) if m.get("kind") == "text"]
            if captions:
                return self._add_captions_and_images(texts, metas, given, captions)
            return self._add_image_uris(texts, metas, given)
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        final = [i or str(uuid.uuid4()) for i in given]
        unique = {i: row for row, i in enumerate(final)}  # the last of a repeated id wins
        rows = list(unique.values())
        docs = [Document(id=final[r], page_content=texts[r], metadata=metas[r]) for r in rows]
        self.upsert_vectors([final[r] for r in rows], vectors[rows], docs)
        return final

    def _add_captions_and_images(
        self,
        texts: list[str],
        metas: list[dict[str, Any]],
        given: list[str | None],
        captions: list[int],
    ) -> list[str]:
        """``add_texts`` with text documents (``metadata["kind"] == "text"``) among images.

        A text document (a caption, OCR text, alt text) is embedded by the CLIP text tower,
        in the images' space, under a content id of its text and parent. Its parent image
        is ``metadata["parent_id"]`` or the record listing ``metadata["source"]`` (kept as
        ``parent_source``; a text record lists no path of its own, so syncing and moving
        images never take it for an image).

        Raises:
            EncoderError: The model has no text tower.
        """
        import hashlib

        import numpy as np

        image = self.image_embeddings
        if not image.supports_text:
            raise EncoderError(
                f"{image.model_id} has no text tower, so it cannot embed text documents "
                "(metadata kind='text'): use a CLIP-type model for captions beside images"
            )
        out: list[str | None] = [None] * len(texts)
        rest = [r for r in range(len(texts)) if r not in set(captions)]
        if rest:
            ids = self._add_image_uris(
                [texts[r] for r in rest], [metas[r] for r in rest], [given[r] for r in rest]
            )
            for r, i in zip(rest, ids, strict=True):
                out[r] = i
        owners: dict[str, str] | None = None
        docs: list[Document] = []
        for r in captions:
            meta = dict(metas[r])
            source = meta.pop("source", None)
            if source is not None:
                meta["parent_source"] = source
            if "parent_id" not in meta and source is not None:
                if owners is None:
                    owners = {p: i for i, m in self.records().items() for p in record_paths(m)}
                parent = owners.get(str(source))
                if parent is not None:
                    meta["parent_id"] = parent
            key = f"text\n{meta.get('parent_id', '')}\n{texts[r]}".encode()
            rid = given[r] or content_id(hashlib.sha256(key).hexdigest(), image.model_id)
            out[r] = rid
            docs.append(Document(id=rid, page_content=texts[r], metadata=meta))
        unique = {str(d.id): d for d in docs}  # the last of a repeated id wins
        vectors = np.asarray(
            image.embed_documents([d.page_content for d in unique.values()]), dtype=np.float32
        )
        self.upsert_vectors(list(unique), vectors, list(unique.values()))
        return [str(i) for i in out]

    def _add_image_uris(
        self, uris: list[str], metas: list[dict[str, Any]], given: list[str | None]
    ) -> list[str]:
        """``add_texts`` of an image model: all or nothing, content ids unless given."""
        image = self.image_embeddings
        items = [Document(page_content=u, metadata=m) for u, m in zip(uris, metas, strict=True)]
        if not any(given):
            pending = self.prepare_add(items)
            raise_failures(pending.result.failures, len(uris))
            self.commit_add(pending)
            return pending.result.input_ids
        result = AddResult()
        rows = to_image_documents(items, image.load_options, result.failures)
        raise_failures(result.failures, len(uris))
        final = [
            given[r.position] or content_id(r.document.metadata["sha256"], image.model_id)
            for r in rows
        ]
        unique = {i: row for row, i in enumerate(final)}
        chunk = [(final[r], rows[r].document) for r in unique.values()]
        held = {final[r]: s for r in unique.values() if (s := rows[r].held) is not None}
        hashed = {final[r] for r in unique.values() if rows[r].hashed}
        written, vectors, wdocs = embed_chunk(image, chunk, 0, result, held=held, hashed=hashed)
        # the chunk's rows are the inputs' rows only without repeated ids: name the input
        positions = [rows[r].position for r in unique.values()]
        result.failures = [e.with_index(positions[e.index or 0]) for e in result.failures]
        raise_failures(result.failures, len(uris))
        self.upsert_vectors(written, vectors, wdocs)
        return [str(i) for i in final]

    # -- image writes --------------------------------------------------------------------
    def plan_add(self, images: Iterable[ImageItem], *, replace_changed: bool = True) -> AddPlan:
        """What :meth:`add_images` would do, without embedding or writing anything: the
        images to embed, the records that gain paths, the paths that move (see
        :mod:`~langchain_image_embeddings.vectorstores._ingest`).

        Raises:
            EncoderError: The store's model does not embed images.
        """
        return plan_add(
            images,
            self.image_embeddings,
            get_by_ids=self.get_by_ids,
            records=self.records,
            replace_changed=replace_changed,
        )

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
        plan = self.plan_add(images, replace_changed=replace_changed)
        result, image = plan.result, self.image_embeddings
        for start in range(0, len(plan.todo), WRITE_BATCH):
            chunk = plan.todo[start : start + WRITE_BATCH]
            ids, vectors, written = embed_chunk(
                image, chunk, start, result, held=plan.held, hashed=plan.hashed
            )
            if ids:
                self.upsert_vectors(ids, vectors, written)
                result.added.extend(ids)
        self._finish_add(result, plan.relinked, plan.moved)
        return result

    def prepare_add(
        self, images: Iterable[ImageItem], *, replace_changed: bool = True
    ) -> PendingAdd:
        """Embed the images :meth:`add_images` would add, without writing anything."""
        import numpy as np

        plan = self.plan_add(images, replace_changed=replace_changed)
        image = self.image_embeddings
        ids: list[str] = []
        parts: list[np.ndarray] = []
        docs: list[Document] = []
        for start in range(0, len(plan.todo), WRITE_BATCH):
            chunk = plan.todo[start : start + WRITE_BATCH]
            chunk_ids, vectors, written = embed_chunk(
                image, chunk, start, plan.result, held=plan.held, hashed=plan.hashed
            )
            ids.extend(chunk_ids)
            parts.append(vectors)
            docs.extend(written)
        dim = int(image.dim)
        matrix = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        return PendingAdd(ids, matrix, docs, plan.relinked, plan.moved, plan.result)

    def commit_add(self, pending: PendingAdd) -> AddResult:
        """Write what :meth:`prepare_add` embedded (in batches) and relink moved paths.

        ``pending`` may also carry vectors made elsewhere for a :meth:`plan_add` (the shard
        loader's): they are checked like any other write.
        """
        result = pending.result
        for start in range(0, len(pending.ids), self.write_batch):
            stop = start + self.write_batch
            self.upsert_vectors(
                pending.ids[start:stop], pending.vectors[start:stop], pending.documents[start:stop]
            )
            result.added.extend(pending.ids[start:stop])
        self._finish_add(result, pending.relinked, pending.moved)
        result.committed = True
        return result

    def _finish_add(
        self, result: AddResult, relinked: dict[str, list[str]], moved: dict[str, str]
    ) -> None:
        """Relink the records that gained paths; take moved paths out of their old records."""
        if relinked:
            docs = {d.id: d for d in self.get_by_ids(list(relinked))}
            ids = [i for i in relinked if i in docs]
            self.update_metadata(ids, [with_paths(docs[i].metadata, relinked[i]) for i in ids])
        failed = {e.source for e in result.failures}
        moving = [p for p in moved if p not in failed]
        result.replaced.extend(self.remove_paths(moving, owners=moved))

    def remove_paths(
        self, paths: Iterable[str], *, owners: dict[str, str] | None = None
    ) -> list[str]:
        """Take paths out of the records that list them; delete records left with none.

        Args:
            paths: The paths (or URIs) to take out.
            owners: ``{path: record id}`` when the caller knows it (else every record is read).

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
                updates[rid] = with_paths(doc.metadata, left)
            else:
                deleted.append(rid)
        if updates:
            self.update_metadata(list(updates), list(updates.values()))
        if deleted:
            self.delete(deleted)
        return deleted

    # -- searches ------------------------------------------------------------------------
    def text_query_vector(self, query: str, query_mode: QueryMode | None = None) -> list[float]:
        """The vector a string query is searched with, by the query rule.

        With ``query_mode="auto"`` (the store's :attr:`query_mode` by default) an image
        model reads a query that is an existing image file or an image URI
        (``data:image/...``, an image URL) as that image, on every model: stock retrievers
        (``as_retriever()``, ``EnsembleRetriever`` ...) then search image-to-image. Other
        strings go through the CLIP text tower. ``"image"`` reads any string as an image
        input, ``"text"`` always embeds the text.

        Raises:
            EncoderError: An image model without a text tower, and a query that is not an
                image URI.
        """
        image = self._image_embeddings
        mode = query_mode or self.query_mode
        if image is not None and mode != "text":
            from langchain_image_embeddings.document_embeddings import resolve_query_mode

            if mode == "image" or (
                image.supports_text
                and resolve_query_mode(mode, query, supports_text=True) == "image"
            ):
                return self.image_query_vector(query.strip())
        if image is not None and not image.supports_text:
            from langchain_image_embeddings.embeddings import looks_like_image_uri

            if looks_like_image_uri(query):
                return self.image_query_vector(query.strip())
            raise EncoderError(
                f"{image.model_id} has no text tower, so it cannot embed the text query "
                f"{query[:60]!r}: search by image (similarity_search_by_image) or use a CLIP-type "
                "model"
            )
        return list(self._embedding.embed_query(query))

    def image_query_vector(self, image: ImageInput) -> list[float]:
        """The vector a query image (any supported input) is searched with."""
        return list(self.image_embeddings.embed_images([image])[0])

    def _query_unit(self, embedding: Sequence[float]) -> np.ndarray:
        """The query as a unit ``float32`` vector.

        Raises:
            StoreError: Not one vector of the store's dimension, NaN/inf values or zero norm
                (such a query would rank the documents arbitrarily).
        """
        import numpy as np

        try:
            query = np.asarray(embedding, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the query is not a vector of numbers: {exc}") from exc
        dim = self.dim
        if query.ndim != 1 or (dim is not None and len(query) != dim):
            raise StoreError(
                f"the query vector has shape {query.shape} (dimension {query.shape[-1]}), the "
                f"store holds vectors of dimension {dim}: was it made by another model?"
            )
        if not np.isfinite(query).all():
            raise StoreError("the query vector has NaN/inf values: it cannot rank documents")
        if float(np.linalg.norm(query)) <= MIN_NORM:
            raise StoreError("the query vector is zero (no direction): it cannot rank documents")
        return unit_rows(query.reshape(1, -1)).reshape(-1)

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
        if k <= 0 or self.backend.is_empty():
            return []
        query = self._query_unit(embedding)
        hits = self.backend.search(query, k, filter, max(fetch_k, k))
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
        vector = self.text_query_vector(query, kwargs.pop("query_mode", None))
        return self.similarity_search_with_score_by_vector(vector, k, filter, **kwargs)

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

    async def asimilarity_search_by_image_with_relevance_score(
        self, image: ImageInput | None = None, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_by_image_with_relevance_score` (in a worker thread)."""
        from langchain_core.runnables.config import run_in_executor

        return await run_in_executor(
            None, self.similarity_search_by_image_with_relevance_score, image, k, filter, **kwargs
        )

    async def asimilarity_search_by_image(
        self, image: ImageInput | None = None, k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search_by_image` (decoding and the model run off the loop)."""
        hits = await self.asimilarity_search_by_image_with_relevance_score(
            image, k, filter, **kwargs
        )
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
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        if k <= 0 or self.backend.is_empty():
            return []
        query = self._query_unit(embedding)
        with self.backend.mutex:  # the hits' vectors, before another thread deletes them
            hits = self.backend.search(query, max(fetch_k, k), filter, max(fetch_k, k))
            if not hits:
                return []
            vectors = self.backend.vectors([str(d.id) for d, _ in hits])
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
        """MMR search for a string query (read by :meth:`text_query_vector`)."""
        vector = self.text_query_vector(query, kwargs.pop("query_mode", None))
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter, **kwargs
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

    def similarity_search_with_score_by_vectors(
        self,
        embeddings: Sequence[Sequence[float]],
        k: int = 4,
        filter: Any = None,
        *,
        fetch_k: int = 20,
        score_threshold: float | None = None,
        **kwargs: Any,
    ) -> list[list[tuple[Document, float]]]:
        """Batched search: for each query vector, what
        :meth:`similarity_search_with_score_by_vector` returns, in query order.

        A backend with ``search_many`` answers all the queries in one call (FAISS: one
        index search for every query's candidates; Milvus: one request); others are asked
        query by query. Retrievers' ``batch`` / ``abatch`` and evaluation loops should call
        this with the embedded queries.

        Raises:
            StoreError: A query that is not a finite, non-zero vector of the store's dimension.
        """
        import numpy as np

        if k <= 0 or not len(embeddings) or self.backend.is_empty():
            return [[] for _ in embeddings]
        queries = np.stack([self._query_unit(e) for e in embeddings])
        search_many = getattr(self.backend, "search_many", None)
        if search_many is not None:
            hits = search_many(queries, k, filter, max(fetch_k, k))
        else:
            hits = [self.backend.search(q, k, filter, max(fetch_k, k)) for q in queries]
        out = []
        for found in hits:
            scored = [(doc, relevance_from_cosine(cos)) for doc, cos in found]
            if score_threshold is not None:
                scored = [(d, s) for d, s in scored if s >= score_threshold]
            out.append(scored[:k])
        return out

    def similarity_search_by_vectors(
        self,
        embeddings: Sequence[Sequence[float]],
        k: int = 4,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[list[Document]]:
        """Batched :meth:`similarity_search_by_vector`: the nearest documents per query."""
        batched = self.similarity_search_with_score_by_vectors(embeddings, k, filter, **kwargs)
        return [[doc for doc, _ in hits] for hits in batched]
