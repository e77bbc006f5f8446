"""Image ingest shared by the image stores: content ids, duplicates, batches, failures.

:class:`ImageIngest` turns image documents, paths and URIs into records: each image is
read once for its header and hash, identical bytes at several paths share one record (its
``sources``), images already stored are skipped, a path whose bytes changed leaves its old
record, and unreadable images or NaN/inf/zero vectors are per-item failures, never written
(``add_images``); ``prepare_add`` / ``commit_add`` are the all-or-nothing halves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.vectorstores.records import (
    BAD_VECTOR_CODE,
    WRITE_BATCH,
    AddResult,
    PendingAdd,
    bad_vector_rows,
    content_id,
    record_paths,
    to_image_documents,
    with_paths,
)
from langchain_image_embeddings.vectorstores.store_core import StoreCore

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ImageIngest", "ImageItem"]

#: What ``add_images`` takes: image documents (from the loaders), paths or URIs.
ImageItem = Document | str | os.PathLike[str]


class ImageIngest(StoreCore):
    """Image-aware writes of an image store (a base class: use
    :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore` and its siblings).

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore(ImageEmbeddings("timm:efficientnet_lite0"))
            result = store.add_images(["photos/chelsea.jpg", "photos/copy-of-chelsea.jpg"])
            result.added, result.duplicates, result.failures
    """

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
        result = AddResult()
        docs = to_image_documents(
            [Document(page_content=u, metadata=m) for u, m in zip(uris, metas, strict=True)],
            image.load_options,
            result.failures,
        )
        self._raise_failures(result.failures, len(uris))
        final = [given[i] or content_id(d.metadata["sha256"], image.model_id) for i, d in docs]
        unique = {i: row for row, i in enumerate(final)}
        chunk = [(final[r], docs[r][1]) for r in unique.values()]
        written, vectors, wdocs = self._embed_chunk(chunk, 0, result)
        # the chunk's rows are the inputs' rows only without repeated ids: name the input
        positions = [docs[r][0] for r in unique.values()]
        result.failures = [e.with_index(positions[e.index or 0]) for e in result.failures]
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
