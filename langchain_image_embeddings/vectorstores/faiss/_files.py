"""The files of a FAISS image store: manifest, segments, deletions, index; read and written.

Layout (format version 3, see :mod:`langchain_image_embeddings.vectorstores.faiss`):
``manifest.json`` names every data file with its SHA-256; ``vectors-<token>.npy`` /
``documents-<token>.sqlite`` per segment (format 2: ``documents-<token>.json``, still read), ``deletions-<token>.npy``, ``index-<token>.faiss``.
Every file is written through the package's one atomic write
(:mod:`langchain_image_embeddings._atomic`) under a new name; a file a manifest names is
never modified, which is what lets readers memory-map segment files.

Opening verifies every named file's checksum by streaming it (chunked reads: the process
does not hold the file in memory), then maps the vectors read-only; a missing or corrupt
file is a :class:`~langchain_image_embeddings.errors.StoreError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._atomic import sha256_file, write_atomic_with
from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._records import bad_vector_rows
from langchain_image_embeddings.vectorstores.faiss._documents import (
    RecordFile,
    RecordList,
    read_json_records,
    write_records,
)
from langchain_image_embeddings.vectorstores.faiss._rows import Segment, map_segment

if TYPE_CHECKING:
    import numpy as np

    from langchain_image_embeddings.embeddings import ImageEmbeddings

FORMAT = "langchain-image-embeddings/faiss"
FORMAT_VERSION = 3
#: Versions this code reads (1: one vectors file and one documents file, exact index;
#: 2: segments with JSON documents files; 3: segments with SQLite documents files).
READ_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.json"
DATA_FILE = re.compile(
    r"^((vectors|deletions)-.*\.npy|documents-.*\.(json|sqlite)|index-.*\.faiss"
    r"|(vectors-|documents-|deletions-|index-|manifest\.json).*\.tmp)$"
)


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
    if manifest.get("version") not in READ_VERSIONS:
        raise StoreError(f"{file}: unsupported format version {manifest.get('version')!r}")
    return manifest


def checked_file(folder: Path, entry: Any, what: str) -> Path:
    """The file a manifest entry names, after checking it exists and matches its SHA-256."""
    entry = entry if isinstance(entry, dict) else {}
    file = folder / str(entry.get("file", ""))
    if not entry.get("file") or not file.is_file():
        raise StoreError(f"FAISS store {folder}: {what} file {file.name!r} is missing")
    if sha256_file(file) != entry.get("sha256"):
        raise StoreError(f"FAISS store {folder}: {file.name} is corrupt (checksum mismatch)")
    return file


def read_segments(
    folder: Path, manifest: dict[str, Any], dim: int | None
) -> Iterator[tuple[Segment, RecordFile | RecordList]]:
    """Each segment's vectors (checked, memory-mapped) and records (checked; a SQLite file
    opened read-only, or a format-2 JSON list read into memory), in row order.

    Raises:
        StoreError: A missing, corrupt or inconsistent segment.
    """
    for segment in [manifest, *(manifest.get("segments") or [])]:
        vec_file = checked_file(folder, segment.get("vectors"), "vectors")
        doc_file = checked_file(folder, segment.get("documents"), "documents")
        records: RecordFile | RecordList = (
            RecordFile(doc_file) if doc_file.suffix == ".sqlite" else read_json_records(doc_file)
        )
        try:
            vectors = map_segment(vec_file, dim)
        except StoreError:
            records.close()
            raise
        if len(vectors) != len(records):
            vectors.close()
            records.close()
            raise StoreError(
                f"FAISS store {folder}: {vectors.rows.shape} vectors for {len(records)} documents"
            )
        dim = int(vectors.rows.shape[1])
        yield vectors, records


def read_deletions(folder: Path, entry: Any) -> list[int]:
    """The deleted row numbers a manifest's ``deletions`` entry names (none: ``[]``)."""
    import numpy as np

    if not entry:
        return []
    file = checked_file(folder, entry, "deletions")
    try:
        return [int(r) for r in np.load(file, allow_pickle=False)]
    except (OSError, ValueError) as exc:
        raise StoreError(f"FAISS store {folder}: unreadable data: {exc}") from exc


def read_index(folder: Path, entry: dict[str, Any]) -> Any:
    """The serialized approximate index a manifest's ``index`` entry names (checked)."""
    import numpy as np

    faiss = require("faiss", "faiss-cpu")
    file = checked_file(folder, entry, "index")
    try:
        if _faiss_can_open(file):  # straight from the file: one copy of the index in memory
            return faiss.read_index(str(file))
        return faiss.deserialize_index(np.fromfile(file, dtype=np.uint8))
    except (OSError, RuntimeError) as exc:
        raise StoreError(f"FAISS store {folder}: unreadable index {file.name}: {exc}") from exc


def write_vectors(
    folder: Path, token: str, blocks: Iterable[np.ndarray], n_rows: int, dim: int
) -> dict[str, Any]:
    """Stream ``n_rows`` float32 rows (given in blocks) into ``vectors-<token>.npy``.

    Raises:
        StoreError: A NaN/inf or zero row (nothing is written), or fewer rows than said.
    """
    import numpy as np

    file = folder / f"vectors-{token}.npy"

    def write(tmp: Path) -> None:
        written = 0
        with open(tmp, "wb") as fh:
            header = {"descr": "<f4", "fortran_order": False, "shape": (n_rows, dim)}
            np.lib.format.write_array_header_1_0(fh, header)
            for block in blocks:
                rows = np.ascontiguousarray(block, dtype=np.float32)
                if len(rows) and bad_vector_rows(rows):
                    raise StoreError(
                        f"FAISS store {folder}: refusing to save NaN/inf or zero vectors"
                    )
                fh.write(rows.tobytes())
                written += len(rows)
        if written != n_rows:  # pragma: no cover - a bug, never a user error
            raise StoreError(f"FAISS store {folder}: wrote {written} of {n_rows} rows")

    write_atomic_with(file, write)
    return {"file": file.name, "sha256": sha256_file(file)}


def write_documents(
    folder: Path, token: str, records: Iterable[dict[str, Any]], n_rows: int
) -> dict[str, Any]:
    """Stream document records (row order) into ``documents-<token>.sqlite``.

    Raises:
        StoreError: Not ``n_rows`` records (nothing is written).
    """
    file = folder / f"documents-{token}.sqlite"

    def write(tmp: Path) -> None:
        written = write_records(tmp, records)
        if written != n_rows:  # pragma: no cover - a bug, never a user error
            raise StoreError(f"FAISS store {folder}: wrote {written} of {n_rows} documents")

    write_atomic_with(file, write)
    return {"file": file.name, "sha256": sha256_file(file)}


def write_deletions(folder: Path, token: str, dead: Iterable[int]) -> dict[str, Any] | None:
    """Write deleted row numbers to ``deletions-<token>.npy`` (``None`` when there are none)."""
    import numpy as np

    rows = np.asarray(sorted(dead), dtype=np.int64)
    if not len(rows):
        return None
    file = folder / f"deletions-{token}.npy"

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, rows, allow_pickle=False)

    write_atomic_with(file, write)
    return {"file": file.name, "sha256": sha256_file(file), "count": len(rows)}


def write_index(folder: Path, token: str, index: Any) -> dict[str, Any]:
    """Serialize an approximate index to ``index-<token>.faiss`` (never a pickle)."""
    import numpy as np

    faiss = require("faiss", "faiss-cpu")
    file = folder / f"index-{token}.faiss"

    def write(tmp: Path) -> None:
        if _faiss_can_open(tmp):  # streamed to the file: no serialized copy in memory
            faiss.write_index(index, str(tmp))
        else:
            np.asarray(faiss.serialize_index(index), dtype=np.uint8).tofile(tmp)

    write_atomic_with(file, write)
    return {
        "file": file.name,
        "sha256": sha256_file(file),
        "rows": int(index.ntotal),
        "memory_bytes": file.stat().st_size,
    }


def _faiss_can_open(file: Path) -> bool:
    """Whether faiss's own file I/O can open ``file``: it takes a narrow C string (the
    ANSI code page on Windows), so only ASCII paths are safe everywhere; others go through
    an in-memory copy. Reading and writing by path keeps a 2 GB HNSW graph in memory once
    (through bytes it was held three times while opening: file bytes, faiss's copy, index)."""
    return str(file).isascii()


def files_of(manifest: dict[str, Any]) -> list[str]:
    """Every data file a manifest names."""
    entries = [manifest.get("vectors"), manifest.get("documents"), manifest.get("deletions")]
    for segment in manifest.get("segments") or []:
        entries += [segment.get("vectors"), segment.get("documents")]
    entries.append(manifest.get("index"))
    return [str(e["file"]) for e in entries if isinstance(e, dict) and e.get("file")]


def remove_unreferenced(folder: Path, manifest: dict[str, Any]) -> None:
    """Delete data files the manifest does not name (older generations, killed saves)."""
    keep = {MANIFEST, *files_of(manifest)}
    for old in folder.iterdir():
        if old.name not in keep and DATA_FILE.match(old.name):
            with contextlib.suppress(OSError):  # e.g. still mapped by a reader on Windows
                old.unlink()


def refuse_stock_folder(folder: Path) -> None:
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


def recorded_image_model(folder: Path, manifest: dict[str, Any]) -> ImageEmbeddings:
    """The image model a manifest records.

    Raises:
        StoreError: The store was written with a text model (it must be given).
    """
    from langchain_image_embeddings.embeddings import ImageEmbeddings

    record = manifest.get("model") or {}
    if "fingerprint" not in record:
        raise StoreError(
            f"FAISS store {folder} was written with {record.get('model')!r}, not an image model: "
            "pass the same embeddings to open it"
        )
    return ImageEmbeddings(str(record.get("model")))


def faiss_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a FAISS store holds, its index and tuning, from its manifest alone.

    Raises:
        StoreError: No store at ``path``.
    """
    manifest = read_manifest(path)
    model = manifest.get("model") or {}
    index = manifest.get("index") or {}  # version 1 stores: exact, no index entry
    count = int(manifest.get("count", 0))
    dim = int(manifest.get("dim") or model.get("dim") or 0)
    return {
        "count": count,
        "model": model.get("model"),
        "dim": model.get("dim"),
        "metric": manifest.get("metric"),
        "index": index.get("kind", "flat"),
        "index_requested": index.get("requested", "flat"),
        "index_factory": index.get("factory", "Flat"),
        "index_memory_bytes": index.get("memory_bytes", count * dim * 4),
        "vectors_bytes": int(manifest.get("rows", count)) * dim * 4,
        "index_params": index.get("params", {}),
        "recall_at_10": index.get("recall", 1.0),
        "recall_target": index.get("recall_target", 0.95),
        "recall_reached": index.get("reached", True),
        "recall_queries": index.get(
            "recall_queries", "exact search" if not index.get("file") else "stored rows"
        ),
        "search_refine": index.get("refine"),
        "ms_per_query": index.get("ms_per_query"),
        "plans_tried": [f"{t['factory']}: {t['recall']}" for t in index.get("plans_tried") or []],
        "expected_rows": index.get("expected_rows"),
        "memory_budget": index.get("memory_budget"),
        "segments": 1 + len(manifest.get("segments") or []),
        "deleted_rows": int((manifest.get("deletions") or {}).get("count", 0)),
    }
