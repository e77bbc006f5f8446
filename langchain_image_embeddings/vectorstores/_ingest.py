"""Image ingest: from inputs to the records a store writes, by content id.

The flow of :meth:`ImageVectorStore.add_images
<langchain_image_embeddings.vectorstores.base.ImageVectorStore.add_images>`, whose writes
live in the store:

1. :func:`to_image_documents`: each input (path, URI or image document) is read once by
   :func:`~langchain_image_embeddings.images.read_image_source` for its header and SHA-256
   (unreadable ones become per-item failures); the bytes of a remote image (``http(s)``,
   ``data:``, object storage) are kept for step 3, so it is never downloaded twice; a local
   ``.pdf`` path becomes its page and figure documents
   (:func:`~langchain_image_embeddings.documents.pdf_documents`, nothing rendered yet);
2. :func:`plan_add`: inputs are grouped by content id (identical bytes at several paths share
   one record that lists every path in ``sources``), ids already stored are skipped (their
   ``sources`` gain the new paths), and with ``replace_changed`` a path whose bytes changed
   is marked to leave its old record;
3. :func:`embed_chunk`: the new images are embedded with
   :meth:`ImageEmbeddings.try_embed_images <langchain_image_embeddings.embeddings.ImageEmbeddings.try_embed_images>`;
   kept bytes are decoded as they are, local files are read again and must hash to the
   SHA-256 of step 1 (a file rewritten in between fails with code ``changed``), so the hash
   a record carries is always the hash of the bytes its vector was made from; unreadable
   images and NaN/inf/zero vectors are failures, never written;
4. the store writes the chunk, relinks the skipped records and removes moved paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from langchain_core.documents import Document

from langchain_image_embeddings.documents._pages import pdf_documents
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._options import ImageLoadOptions
from langchain_image_embeddings.images._pdf import is_pdf_path
from langchain_image_embeddings.images._read import read_image_source, uri_scheme
from langchain_image_embeddings.images._source import ImageSource
from langchain_image_embeddings.vectorstores._records import (
    BAD_VECTOR_CODE,
    AddResult,
    bad_vector_rows,
    content_id,
    record_paths,
    with_paths,
)

if TYPE_CHECKING:
    import numpy as np

    from langchain_image_embeddings.embeddings import ImageEmbeddings

#: What ``add_images`` takes: image documents (from the loaders), paths or URIs.
ImageItem = Document | str | os.PathLike[str]

#: Images embedded and written per step of ``add_images``.
WRITE_BATCH = 256

#: Schemes whose bytes are kept between the read and the embedding (re-reading them costs a
#: download, or cannot be done at all): every scheme but local files.
_LOCAL_SCHEMES = ("", "file")


class ImageRow(NamedTuple):
    """One readable input of ``add_images``, as :func:`to_image_documents` read it.

    Attributes:
        position: The input's index.
        document: The image document (``page_content``: the URI; ``metadata``: ``sha256``,
            size, format, ...).
        held: The bytes read, kept for remote inputs only (a local file is read again:
            holding every file of a folder would cost its size in memory).
        hashed: ``metadata["sha256"]`` was computed here from the bytes read (not given by
            the caller), so the bytes embedded must have it.
    """

    position: int
    document: Document
    held: ImageSource | None
    hashed: bool


@dataclass
class AddPlan:
    """What ``add_images`` would do with its inputs, before anything is embedded or written.

    Attributes:
        result: Skipped ids, duplicates, failures and ``input_ids`` so far.
        todo: ``(content id, image document)`` of each image to embed and write.
        relinked: Existing records whose ``sources`` gain paths: ``{id: paths}``.
        moved: Paths that leave the record they were in: ``{path: old id}``.
        held: The bytes of the remote images to embed, by content id (never read twice).
        hashed: Content ids whose bytes must hash to the ``sha256`` read in the plan.

    Example:
        .. code-block:: python

            plan = store.plan_add(["cat.jpg", "dog.jpg"])
            [cid for cid, _ in plan.todo], plan.result.skipped
    """

    result: AddResult
    todo: list[tuple[str, Document]]
    relinked: dict[str, list[str]]
    moved: dict[str, str]
    held: dict[str, ImageSource] = field(default_factory=dict)
    hashed: set[str] = field(default_factory=set)


def to_image_documents(
    images: Iterable[ImageItem],
    load_options: ImageLoadOptions | None = None,
    failures: list[ImageLoadError] | None = None,
) -> list[ImageRow]:
    """Read each path/URI/document once: an image document with ``sha256`` metadata per input.

    A document that already has ``sha256`` metadata is taken as it is (not read). A local
    PDF (a path or ``file://`` URI ending in ``.pdf``) gives one row per page and per figure
    (with its default :class:`~langchain_image_embeddings.documents.PDFOptions`), all with
    the PDF's input index; a PDF that cannot be read is one failure.

    Raises:
        ImageLoadError: An unreadable input, when ``failures`` is ``None`` (else it is
            appended there, with its input index).
    """
    rows: list[ImageRow] = []
    for index, item in enumerate(images):
        if isinstance(item, Document):
            if "sha256" in item.metadata:
                rows.append(ImageRow(index, item, None, False))
                continue
            uri, extra = item.page_content, dict(item.metadata)
        else:
            uri, extra = os.fspath(item), {}
            if is_pdf_path(uri) and uri_scheme(uri) in _LOCAL_SCHEMES:
                try:
                    pages = pdf_documents(uri, load_options or ImageLoadOptions())
                except ImageLoadError as err:
                    if failures is None:
                        raise
                    failures.append(err.with_index(index))
                    continue
                rows.extend(ImageRow(index, page, None, False) for page in pages)
                continue
        try:
            read = read_image_source(uri, load_options)
        except ImageLoadError as err:
            if failures is None:
                raise
            failures.append(err.with_index(index))
            continue
        held = None if uri_scheme(uri) in _LOCAL_SCHEMES else read
        doc = Document(page_content=read.source, metadata={**extra, **read.metadata})
        rows.append(ImageRow(index, doc, held, True))
    return rows


def plan_add(
    images: Iterable[ImageItem],
    image: ImageEmbeddings,
    *,
    get_by_ids: Callable[[Sequence[str]], list[Document]],
    records: Callable[[], dict[str, dict[str, Any]]],
    replace_changed: bool,
) -> AddPlan:
    """Group inputs by content id; find what to embed, what to relink, what moves.

    Args:
        images: The inputs of ``add_images``.
        image: The store's image model (its id makes the content ids).
        get_by_ids: The store's ``get_by_ids``: which content ids are stored already.
        records: The store's ``records``: who owns each path (only with ``replace_changed``).
        replace_changed: Find paths whose bytes changed (they leave their old record).
    """
    result = AddResult()
    rows = to_image_documents(images, image.load_options, result.failures)
    groups: dict[str, list[Document]] = {}
    read: dict[str, ImageRow] = {}
    result.input_ids = []
    for row in rows:
        cid = content_id(row.document.metadata["sha256"], image.model_id)
        groups.setdefault(cid, []).append(row.document)
        read.setdefault(cid, row)
        result.input_ids.append(cid)
    present = {d.id: d for d in get_by_ids(list(groups))} if groups else {}
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
        owner = {p: i for i, meta in records().items() for p in record_paths(meta)}
        for cid, group in groups.items():
            for doc in group:
                path = str(doc.metadata["source"])
                if owner.get(path) not in (None, cid):
                    moved[path] = owner[path]
    held = {cid: r.held for cid, _ in todo if (r := read[cid]).held is not None}
    hashed = {cid for cid, _ in todo if read[cid].hashed}
    return AddPlan(result, todo, relinked, moved, held, hashed)


def embed_chunk(
    image: ImageEmbeddings,
    chunk: Sequence[tuple[str, Document]],
    offset: int,
    result: AddResult,
    *,
    held: Mapping[str, ImageSource] | None = None,
    hashed: Collection[str] = (),
) -> tuple[list[str], np.ndarray, list[Document]]:
    """Embed a chunk of the plan's ``todo``; unreadable images and NaN/inf/zero vectors go
    to ``result.failures`` (indexed from ``offset``).

    Args:
        image: The store's image model.
        chunk: ``(id, image document)`` pairs to embed.
        offset: The index of the chunk's first pair in the whole plan.
        result: Where failures go.
        held: Bytes already read, by id: decoded as they are, never read again.
        hashed: Ids whose bytes must hash to their document's ``sha256`` (a file changed
            since it was read fails with code ``changed``).

    Returns:
        ``(ids, vectors, documents)`` of the rows to write.
    """
    import numpy as np

    kept = held or {}
    inputs = [kept.get(cid, d.page_content) for cid, d in chunk]
    expected = [d.metadata["sha256"] if cid in hashed else None for cid, d in chunk]
    embedded = image.try_embed_images(
        inputs, expected_sha256=expected if any(e is not None for e in expected) else None
    )
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


def raise_failures(failures: list[ImageLoadError], total: int) -> None:
    """Raise the first failure (saying nothing was written) if there is any.

    Raises:
        ImageLoadError: The first of ``failures``, counting the others.
    """
    if failures:
        first = failures[0]
        more = f" ({len(failures)} of {total} inputs failed)" if len(failures) > 1 else ""
        raise ImageLoadError(
            first.source, f"{first.reason}; nothing was written{more}", first.code, first.index
        )
