"""The documents of a FAISS image store's saved segments, kept on disk and read for results.

Each saved segment's records (id, ``page_content``, metadata) live in its own SQLite file,
``documents-<token>.sqlite``: one table ``records(row INTEGER PRIMARY KEY, id, page_content,
metadata)`` keyed by the row number inside the segment, metadata as JSON text. The file is
written once (into a temporary file renamed into place, like every store file) and never
modified; readers open it read-only with an ``immutable=1`` URI, so SQLite takes no lock,
writes no journal and works in a read-only folder. An open connection keeps its file
descriptor, so on POSIX a reader keeps reading the generation it opened after a later save
deletes the file (like the memory-mapped vectors of :mod:`._rows`).

Only ids are loaded when a segment is opened (the store's id maps need them); documents and
metadata are read when a result, :meth:`SavedRecords.fetch`, a scan or a filter needs them
(scans stream in row order). Format 2 stores kept a segment's records in one JSON list
(``documents-<token>.json``); such a file is read whole into a :class:`RecordList` (held in
memory, as format 2 did) until the next save rewrites the store in this format.

Chosen by measurement over an offsets-indexed JSON-lines file read with ``pread`` (see
``docs/scale.md``, "Records off the heap"): about the same bytes on disk and fetch cost, and
SQLite reads the ids without parsing every record.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from langchain_image_embeddings.errors import StoreError

#: Records fetched per SQL statement (SQLite's default limit on host parameters is 32,766).
FETCH_BATCH = 900
#: Rows per block when metadata is streamed (a scan, a filter).
SCAN_BLOCK = 10_000

_SCHEMA = (
    "CREATE TABLE records (row INTEGER PRIMARY KEY, id TEXT, "
    "page_content TEXT NOT NULL, metadata TEXT NOT NULL)"
)


def record_of(doc: Document | None, rid: str | None) -> dict[str, Any]:
    """The stored record of a document (a placeholder for a row deleted before any save)."""
    if rid is None or doc is None:
        return {"id": None, "page_content": "", "metadata": {}}
    return {"id": rid, "page_content": doc.page_content, "metadata": doc.metadata}


def document_of(record: dict[str, Any]) -> Document:
    """A stored record as a new ``Document`` (its metadata a copy)."""
    return Document(
        id=record.get("id"),
        page_content=record.get("page_content", ""),
        metadata=dict(record.get("metadata") or {}),
    )


def write_records(file: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write ``records`` (row order) into a new SQLite file ``file``; returns the row count."""
    con = sqlite3.connect(file)
    try:
        con.execute("PRAGMA journal_mode=OFF")  # a fresh file renamed into place when whole
        con.execute("PRAGMA synchronous=OFF")  # the caller fsyncs the finished file
        con.execute(_SCHEMA)
        count = 0

        def rows() -> Iterator[tuple[int, str | None, str, str]]:
            nonlocal count
            for rec in records:
                yield (
                    count,
                    rec.get("id"),
                    str(rec.get("page_content") or ""),
                    json.dumps(rec.get("metadata") or {}),
                )
                count += 1

        con.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", rows())
        con.commit()
    finally:
        con.close()
    return count


class RecordFile:
    """A saved segment's records in its SQLite file, opened read-only (no lock, no journal).

    Example:
        .. code-block:: python

            part = RecordFile(Path("index/documents-00000002-1a2b3c4d.sqlite"))
            part.ids()                 # every row's id, in row order
            part.fetch([7, 3])         # {7: {...}, 3: {...}}: id, page_content, metadata
            part.close()

    Raises:
        StoreError: Not a records file of this format.
    """

    def __init__(self, file: Path) -> None:
        self.name = file.name
        uri = f"{file.absolute().as_uri()}?mode=ro&immutable=1"
        try:
            con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            # the first statement opens the file: its descriptor then outlives an unlink
            (self._rows,) = con.execute("SELECT count(*) FROM records").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(
                f"FAISS store {file.parent}: unreadable documents {file.name}: {exc}"
            ) from exc
        self._con = con
        self._close = weakref.finalize(self, con.close)

    def __len__(self) -> int:
        return int(self._rows)

    def ids(self) -> Iterator[str | None]:
        """Every row's id in row order (``None``: a placeholder row), streamed in blocks."""
        cursor = self._con.execute("SELECT id FROM records ORDER BY row")
        count = 0
        while block := cursor.fetchmany(SCAN_BLOCK):
            count += len(block)
            for (rid,) in block:
                yield rid
        if count != self._rows:  # pragma: no cover - rows must be 0..n-1
            raise StoreError(f"{self.name}: row numbers are not contiguous")

    def fetch(self, rows: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The records of these local rows."""
        out: dict[int, dict[str, Any]] = {}
        rows = sorted(set(rows))
        for s in range(0, len(rows), FETCH_BATCH):
            part = rows[s : s + FETCH_BATCH]
            query = (
                "SELECT row, id, page_content, metadata FROM records "
                f"WHERE row IN ({','.join('?' * len(part))})"
            )
            for row, rid, text, meta in self._con.execute(query, part):
                out[int(row)] = {"id": rid, "page_content": text, "metadata": json.loads(meta)}
        return out

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(local row, record)`` for every row, streamed in row order."""
        cursor = self._con.execute(
            "SELECT row, id, page_content, metadata FROM records ORDER BY row"
        )
        while block := cursor.fetchmany(SCAN_BLOCK):
            for row, rid, text, meta in block:
                yield int(row), {"id": rid, "page_content": text, "metadata": json.loads(meta)}

    def metadata(self) -> Iterator[tuple[int, str | None, dict[str, Any]]]:
        """``(local row, id, metadata)`` for every row, streamed in row order."""
        cursor = self._con.execute("SELECT row, id, metadata FROM records ORDER BY row")
        while block := cursor.fetchmany(SCAN_BLOCK):
            for row, rid, meta in block:
                yield int(row), rid, json.loads(meta)

    def close(self) -> None:
        """Close the connection (and with it the file)."""
        self._close()


class RecordList:
    """A format-2 segment's records (a JSON list), held in memory until the next save.

    Example:
        .. code-block:: python

            part = RecordList([{"id": "a", "page_content": "a.jpg", "metadata": {}}])
            part.fetch([0])[0]["id"]   # "a"
    """

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.name = "in memory"
        self._records = records

    def __len__(self) -> int:
        return len(self._records)

    def ids(self) -> Iterator[str | None]:
        """Every row's id in row order."""
        return (rec.get("id") for rec in self._records)

    def fetch(self, rows: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The records of these local rows."""
        return {int(r): self._records[int(r)] for r in rows}

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(local row, record)`` for every row in row order."""
        return iter(enumerate(self._records))

    def metadata(self) -> Iterator[tuple[int, str | None, dict[str, Any]]]:
        """``(local row, id, metadata)`` for every row in row order."""
        for row, rec in enumerate(self._records):
            yield row, rec.get("id"), rec.get("metadata") or {}

    def close(self) -> None:
        """Drop the records."""
        self._records = []


def read_json_records(file: Path) -> RecordList:
    """A format-2 ``documents-<token>.json`` file.

    Raises:
        StoreError: Not a JSON list.
    """
    try:
        records = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"FAISS store {file.parent}: unreadable data: {exc}") from exc
    if not isinstance(records, list):
        raise StoreError(f"FAISS store {file.parent}: {file.name} is not a list of documents")
    return RecordList(records)


class SavedRecords:
    """The records of every saved segment, in row order (segments on disk, or old lists).

    Example:
        .. code-block:: python

            saved = SavedRecords()
            saved.add_part(RecordFile(Path("index/documents-00000002-1a2b3c4d.sqlite")))
            saved.fetch([0, 5])        # global row -> record
    """

    def __init__(self) -> None:
        self._parts: list[RecordFile | RecordList] = []
        self._starts: list[int] = []
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    @property
    def in_memory(self) -> bool:
        """Whether some part is a format-2 list held in memory."""
        return any(isinstance(p, RecordList) for p in self._parts)

    @property
    def files(self) -> list[str]:
        """Names of the records files open."""
        return [p.name for p in self._parts if isinstance(p, RecordFile)]

    def add_part(self, part: RecordFile | RecordList) -> None:
        """Append a segment's records after the current ones."""
        if not len(part):
            part.close()
            return
        self._parts.append(part)
        self._starts.append(self._rows)
        self._rows += len(part)

    def close(self) -> None:
        """Close every part (this object then holds no rows)."""
        for part in self._parts:
            part.close()
        self._parts, self._starts, self._rows = [], [], 0

    def fetch(self, rows: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The records of these global rows (each below :func:`len`)."""
        by_part: dict[int, list[int]] = {}
        for row in rows:
            p = bisect.bisect_right(self._starts, int(row)) - 1
            by_part.setdefault(p, []).append(int(row) - self._starts[p])
        out: dict[int, dict[str, Any]] = {}
        for p, local in by_part.items():
            start = self._starts[p]
            out.update((start + r, rec) for r, rec in self._parts[p].fetch(local).items())
        return out

    def records(self, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(row, record)`` from row ``start`` on, streamed in row order."""
        for first, part in zip(self._starts, self._parts, strict=True):
            if first + len(part) <= start:
                continue
            for row, rec in part.records():
                if first + row >= start:
                    yield first + row, rec

    def metadata(self) -> Iterator[tuple[int, str | None, dict[str, Any]]]:
        """``(row, id, metadata)`` for every saved row, streamed in row order."""
        for first, part in zip(self._starts, self._parts, strict=True):
            for row, rid, meta in part.metadata():
                yield first + row, rid, meta
