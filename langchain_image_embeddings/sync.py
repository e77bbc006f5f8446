"""Incremental sync of a folder into an image store.

:func:`sync_directory` embeds only images that are new or whose bytes changed (content
ids: ``sha256`` + model), removes the vectors of files that are gone, and leaves
everything else alone: re-running it on an unchanged folder embeds nothing. Only
records whose ``source`` lies under the folder are touched, so one store can hold
several folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._pdf import parse_address
from langchain_image_embeddings.vectorstores._records import content_id, record_paths

if TYPE_CHECKING:
    from langchain_core.documents import Document

    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore


__all__ = ["SyncResult", "sync_directory"]


@dataclass
class SyncResult:
    """What :func:`sync_directory` did.

    Attributes:
        added: Files embedded for the first time.
        updated: Files whose bytes changed (old vector replaced).
        removed: Files gone from the folder (vectors deleted).
        unchanged: Files already in the store with the same bytes (nothing embedded).
        duplicates: Files whose bytes equal another file's: ``{file: that file}``. They
            share its vector (listed in its record's ``sources``), nothing is embedded.
        failed: Files that could not be read or embedded, with the reason.
        embedded: Number of images that went through the model.
        inputs: Every file considered (readable or not), for :meth:`report`.
        committed: False when ``all_or_nothing`` found failures and wrote nothing.

    Example:
        .. code-block:: python

            result = sync_directory(store, "photos")
            result.counts()   # {"added": 3, "updated": 0, "removed": 1, ...}
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)
    failed: list[ImageLoadError] = field(default_factory=list)
    embedded: int = 0
    inputs: list[str] = field(default_factory=list)
    committed: bool = True

    def report(self) -> list[dict[str, str | None]]:
        """One row per input: ``{"input", "status": "ok"|"error", "code", "reason", "duplicate_of"}``.

        ``code`` is one of :data:`~langchain_image_embeddings.errors.IMAGE_ERROR_CODES`
        (``None`` for ``ok``). ``duplicate_of`` names the file with the same bytes whose
        vector this one shares (else ``None``). With ``committed`` false, ``ok`` means the
        file was readable, not that it was written.
        """
        errors: dict[str, ImageLoadError] = {}
        for failure in self.failed:
            errors.setdefault(failure.source, failure)
        rows: list[dict[str, str | None]] = []
        for source in sorted(set(self.inputs) | set(errors)):
            err = errors.get(source)
            if err is None:
                rows.append(
                    {
                        "input": source,
                        "status": "ok",
                        "code": None,
                        "reason": None,
                        "duplicate_of": self.duplicates.get(source),
                    }
                )
            else:
                rows.append(
                    {
                        "input": source,
                        "status": "error",
                        "code": err.code,
                        "reason": err.reason,
                        "duplicate_of": None,
                    }
                )
        return rows

    def counts(self) -> dict[str, int]:
        """``{"added", "updated", "removed", "unchanged", "duplicates", "failed", "embedded"}``."""
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "unchanged": len(self.unchanged),
            "duplicates": len(self.duplicates),
            "failed": len(self.failed),
            "embedded": self.embedded,
        }


def _under(source: str, root: str) -> bool:
    return source == root or source.startswith(root.rstrip(os.sep) + os.sep)


def _file_of(source: str) -> str:
    """The file a record's source is in: the PDF of a page address, else the source."""
    address = parse_address(source)
    return source if address is None else address.document


def sync_directory(
    store: ImageVectorStore,
    directory: str | os.PathLike[str] | ImageDirectoryLoader,
    *,
    delete_missing: bool = True,
    persist: bool = True,
    all_or_nothing: bool = False,
    **loader_kwargs: Any,
) -> SyncResult:
    """Bring ``store`` in line with the images of ``directory``.

    Args:
        store: A :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore` or
            :class:`~langchain_image_embeddings.vectorstores.ChromaImageStore`.
        directory: A folder, or a configured :class:`ImageDirectoryLoader`.
        delete_missing: Remove vectors of files no longer in the folder.
        persist: Call ``store.persist()`` at the end (FAISS saves its folder).
        all_or_nothing: If any file fails, write nothing at all (no add, no delete, no
            save) and return with ``committed`` false; every file is still read and
            embedded first, so the result names every failure.
        **loader_kwargs: Options of :class:`ImageDirectoryLoader` (``glob``, ``exclude``,
            ``pdf=True`` to index the pages and figures of the folder's PDFs ...).

    Returns:
        A :class:`SyncResult`; unreadable files are in ``failed``, never dropped silently.

    Raises:
        StoreLockedError: Another process is writing the store (checked before any work).

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.sync import sync_directory
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore.open("index", ImageEmbeddings("timm:efficientnet_lite0"))
            print(sync_directory(store, "photos").counts())   # second run: embedded == 0
    """
    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader

    if isinstance(directory, ImageDirectoryLoader):
        loader = directory
    else:
        loader = ImageDirectoryLoader(
            directory,
            load_options=store.image_embeddings.load_options,
            # absolute paths: records are matched to the folder by path; mtime: the store's
            # records keep the file's date (the page's "recent" browse and its cards, and what
            # `imgemb load` writes from shards), content ids are the bytes' hash either way
            **{"paths": "absolute", "include_mtime": True, **loader_kwargs},
        )
    if loader.paths != "absolute":  # records are matched to the folder by absolute path
        raise ValueError("sync_directory needs ImageDirectoryLoader(..., paths='absolute')")
    store.acquire_write_lock()  # fail fast, before embedding anything
    root = str(loader.root)
    result = SyncResult()

    docs = loader.load()
    result.failed.extend(loader.failures)
    result.inputs = [d.metadata["source"] for d in docs] + [e.source for e in loader.failures]
    before = {p: i for i, meta in store.records().items() for p in record_paths(meta)}

    if all_or_nothing:
        pending = store.prepare_add(docs)
        if result.failed or pending.result.failures:
            result.failed.extend(pending.result.failures)
            result.committed = False
            result.embedded = len(pending.ids)
            result.duplicates = dict(pending.result.duplicates)
            return result
        add = store.commit_add(pending)
    else:
        add = store.add_images(docs)
    result.embedded = len(add.added)
    result.failed.extend(add.failures)
    failed_sources = {e.source for e in result.failed}
    if delete_missing:
        present = {str(d.metadata["source"]) for d in docs} | failed_sources
        # an unreadable file keeps its last good vector (the failure is reported); an
        # unreadable PDF keeps the vectors of all its pages and figures
        gone = [
            p
            for p in before
            if _under(p, root) and p not in present and _file_of(p) not in failed_sources
        ]
        store.remove_paths(gone, owners=before)  # add_images never touches a gone path
        result.removed = gone

    _classify(store, docs, before, failed_sources, result)
    if persist:
        store.persist()
    result.added.sort()
    result.updated.sort()
    result.unchanged.sort()
    result.removed.sort()
    return result


def _classify(
    store: ImageVectorStore,
    docs: list[Document],
    before: dict[str, str],
    failed_sources: set[str],
    result: SyncResult,
) -> None:
    """Sort each readable file into added / updated / unchanged / duplicate, in ``result``.

    Classified against the final state (a renamed file whose twin left is no duplicate):
    every readable file now belongs to the record of its content id. Only the records of
    the folder's files are read, not the whole store (a full scan on a server).
    """
    model_id = store.image_embeddings.model_id
    after = {str(d.metadata["source"]): content_id(d.metadata["sha256"], model_id) for d in docs}
    primary = {
        str(rec.id): str(rec.metadata.get("source"))
        for rec in store.get_by_ids(sorted(set(after.values())))
    }
    for doc in docs:
        source = str(doc.metadata["source"])
        if source in failed_sources or after[source] not in primary:
            continue
        if primary[after[source]] != source:
            result.duplicates[source] = primary[after[source]]
        elif source not in before:
            result.added.append(source)
        elif before[source] != after[source]:
            result.updated.append(source)
        else:
            result.unchanged.append(source)
