"""The files of a multi-vector store: a manifest, the patch rows, the pages; read and written.

Layout of the folder::

    manifest.json            format, version, dim, model, pool factor, the two file names
    patches-<token>.npy      every page's patch vectors, page after page (float16)
    pages-<token>.json       per page: id, page_content, metadata, first row, row count

A save writes the two data files under a new token through the package's one atomic write
(:mod:`langchain_image_embeddings._atomic`), then replaces ``manifest.json`` atomically, then
removes files no manifest names. A crash at any moment leaves the previous manifest and the
files it names intact: opening the folder gives the last completed save.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from langchain_image_embeddings._atomic import write_atomic, write_atomic_with
from langchain_image_embeddings.errors import StoreError

__all__ = ["FORMAT", "MANIFEST", "SavedPages", "read_pages", "write_pages"]

FORMAT = "langchain-image-embeddings/multivector"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class SavedPages:
    """What a folder holds: the rows (memory-mapped) and, per page, its span and document."""

    dim: int
    model: dict[str, Any]
    pool_factor: int
    rows: np.ndarray
    starts: list[int]
    counts: list[int]
    documents: list[Document]


def read_pages(folder: Path) -> SavedPages | None:
    """Open a saved store (``None`` when the folder holds none yet).

    Raises:
        StoreError: A manifest of another format, or files missing or inconsistent.
    """
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {manifest_path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{folder} is not a multi-vector store ({MANIFEST} names no {FORMAT})")
    if manifest.get("version") != FORMAT_VERSION:
        raise StoreError(
            f"{folder} has multi-vector format version {manifest.get('version')!r}; "
            f"this code reads version {FORMAT_VERSION}"
        )
    try:
        rows = np.load(folder / str(manifest["patches"]), mmap_mode="r", allow_pickle=False)
        pages = json.loads((folder / str(manifest["pages"])).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise StoreError(f"{folder}: a file its manifest names is missing or bad: {exc}") from exc
    dim = int(manifest["dim"])
    starts = [int(p["start"]) for p in pages]
    counts = [int(p["count"]) for p in pages]
    if rows.ndim != 2 or rows.shape[1] != dim or sum(counts) != len(rows):
        raise StoreError(
            f"{folder}: the patch file has shape {rows.shape}, the pages name "
            f"{sum(counts)} rows of dimension {dim}"
        )
    documents = [
        Document(id=p["id"], page_content=p["page_content"], metadata=p["metadata"]) for p in pages
    ]
    return SavedPages(
        dim, dict(manifest["model"]), int(manifest["pool_factor"]), rows, starts, counts, documents
    )


def write_pages(folder: Path, saved: SavedPages) -> None:
    """Save rows and pages as the folder's new generation (see the module docs)."""
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    patches, pages = f"patches-{token}.npy", f"pages-{token}.json"
    rows = np.ascontiguousarray(saved.rows, dtype=np.float16)

    def write_rows(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, rows, allow_pickle=False)

    write_atomic_with(folder / patches, write_rows)
    payload = [
        {
            "id": doc.id,
            "page_content": doc.page_content,
            "metadata": doc.metadata,
            "start": start,
            "count": count,
        }
        for doc, start, count in zip(saved.documents, saved.starts, saved.counts, strict=True)
    ]
    write_atomic(folder / pages, json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "dim": saved.dim,
        "model": saved.model,
        "pool_factor": saved.pool_factor,
        "patches": patches,
        "pages": pages,
    }
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
    for old in list(folder.glob("patches-*.npy")) + list(folder.glob("pages-*.json")):
        if old.name not in (patches, pages):
            with contextlib.suppress(OSError):
                old.unlink()
