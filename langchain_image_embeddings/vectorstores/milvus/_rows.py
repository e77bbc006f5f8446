"""Documents to Milvus rows and back: the size limits of the collection's fields, the
rows of an ``upsert`` (in batches of :data:`WRITE_ROWS`), documents from query rows and
search hits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._filters import metadata_matches
from langchain_image_embeddings.vectorstores.milvus._schema import MAX_ID_LENGTH, MAX_TEXT_LENGTH

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BULK_WRITE_ROWS",
    "UPSERT_BYTES",
    "WRITE_ROWS",
    "check_sizes",
    "hit_documents",
    "json_metadata",
    "relabelled_rows",
    "row_document",
    "upsert_batches",
]

#: Ids per ``get`` / ``delete`` call (an ``id in [...]`` expression) and rows per
#: ``update_metadata`` request.
WRITE_ROWS = 1000
#: Bytes of one ``upsert`` request (vectors, texts and metadata): fewer, larger requests
#: save a round trip per 256 rows (raw pymilvus users insert thousands of rows a call), and
#: Milvus refuses a request over 64 MiB (its gRPC limit), so a request stays well under it.
#: On a busy 2-core machine the gain was within the noise (``benchmarks/milvus.py``).
UPSERT_BYTES = 16 * 2**20
#: Most rows of one ``upsert`` request, and the rows a bulk write (``commit_add``:
#: ``add_images``, ``load_shards``) hands the store per call.
BULK_WRITE_ROWS = 10_000


def json_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata as plain JSON (non-JSON values become strings).

    Example:
        >>> json_metadata({"width": 64, "path": __import__("pathlib").Path("a.jpg")})
        {'width': 64, 'path': 'a.jpg'}
    """
    out: dict[str, Any] = json.loads(_json_text(metadata))
    return out


def _json_text(metadata: Mapping[str, Any]) -> str:
    return json.dumps(dict(metadata), default=str)


def _request_metadata(metadata: Mapping[str, Any]) -> str | dict[str, Any]:
    """The ``metadata`` value of an upsert row: its JSON text, which pymilvus only validates
    (with its C parser) and sends as it is, where a dict is walked value by value in Python
    and dumped again (a third of pymilvus's time per row, issue 26). Metadata that is not
    strict JSON (a NaN or infinite float) goes as the dict it parses to, as before: pymilvus
    stores such a value as ``null``."""
    try:
        return json.dumps(dict(metadata), default=str, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json_metadata(metadata)


def check_sizes(ids: Sequence[str], documents: Sequence[Document]) -> None:
    """Refuse ids and texts longer than their ``VARCHAR`` fields, before anything is written.

    Raises:
        StoreError: Naming the first id or document too long.
    """
    for i, doc in zip(ids, documents, strict=True):
        if len(i.encode()) > MAX_ID_LENGTH:
            raise StoreError(f"id {i[:60]!r}... is longer than {MAX_ID_LENGTH} bytes")
        if len(doc.page_content.encode()) > MAX_TEXT_LENGTH:
            raise StoreError(
                f"page_content of {i!r} is longer than {MAX_TEXT_LENGTH} bytes (Milvus "
                "VARCHAR): store image paths or URLs, not data: URIs; nothing was written"
            )


def upsert_batches(
    ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document]
) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``documents`` (with their ids and vectors), one ``upsert`` request at a
    time: up to :data:`BULK_WRITE_ROWS` rows and :data:`UPSERT_BYTES` bytes (a single row
    larger than that is a request of its own)."""
    row_bytes = 4 * (vectors.shape[1] if vectors.ndim == 2 else 1) + 64
    rows: list[dict[str, Any]] = []
    size = 0
    for start in range(0, len(ids), WRITE_ROWS):  # vectors as lists a thousand at a time
        stop = start + WRITE_ROWS
        for i, row, doc in zip(
            ids[start:stop], vectors[start:stop].tolist(), documents[start:stop], strict=True
        ):
            meta = _request_metadata(doc.metadata)
            text = meta if isinstance(meta, str) else _json_text(meta)
            nbytes = row_bytes + len(i) + len(doc.page_content.encode()) + len(text)
            if rows and (size + nbytes > UPSERT_BYTES or len(rows) >= BULK_WRITE_ROWS):
                yield rows
                rows, size = [], 0
            rows.append(
                {
                    "id": i,
                    "vector": row,
                    "page_content": doc.page_content,
                    "metadata": meta,
                }
            )
            size += nbytes
    if rows:
        yield rows


def relabelled_rows(
    rows: Mapping[str, Mapping[str, Any]],
    ids: Sequence[str],
    metadatas: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Stored ``rows`` (vector and page_content) with new metadata, for the ids present."""
    return [
        {
            "id": i,
            "vector": [float(x) for x in rows[i]["vector"]],
            "page_content": rows[i]["page_content"],
            "metadata": json_metadata(meta),
        }
        for i, meta in zip(ids, metadatas, strict=True)
        if i in rows
    ]


def row_document(row: Mapping[str, Any]) -> Document:
    """The document of a query row (``id``, ``page_content``, ``metadata``)."""
    return Document(
        id=str(row["id"]),
        page_content=row.get("page_content") or "",
        metadata=dict(row.get("metadata") or {}),
    )


def hit_documents(
    hits: Sequence[Mapping[str, Any]], keep: Callable[[dict[str, Any]], bool] | None
) -> list[tuple[Document, float]]:
    """``(document, cosine)`` of search hits, best first, those ``keep`` accepts."""
    out: list[tuple[Document, float]] = []
    for hit in hits:
        entity = dict(hit.get("entity") or {})
        entity["id"] = hit["id"]
        doc = row_document(entity)
        if keep is not None and not metadata_matches(doc.metadata, keep):
            continue
        out.append((doc, float(hit["distance"])))
    return out
