"""Bulk-loading Parquet shards into any image store, without embedding anything again.

Rows go through the same steps as :meth:`ImageVectorStore.add_images
<langchain_image_embeddings.vectorstores.base.ImageVectorStore.add_images>`, with the
shard's vector in place of the model: the store plans the rows (``plan_add``: inputs are
grouped by content id, identical bytes at several paths share one record that lists every
path in ``sources``, ids already in the store are skipped and their ``sources`` gain the
new paths), and the new vectors are written by ``commit_add`` in batches. The loader
depends on the store contract only; the stores know nothing of shards. Loading the same shards again writes nothing; a load killed
midway is resumed by running it again (FAISS stores are saved after every shard file that
added rows; write-through stores such as Milvus and Chroma have every written row already,
and a Milvus store is flushed once, at the end of the load).

Every shard's model record (spec, dimension, fingerprint) must match the store's model:
a mismatch raises the stores' own :class:`~langchain_image_embeddings.errors.ModelMismatchError`
before anything is written.

A damaged shard is refused with a :class:`~langchain_image_embeddings.errors.StoreError`
naming the file, the column and, for a bad value, the row (counted from 0 in the file),
before anything of that shard is written: its columns are checked against the shard schema
when its footer is read (:func:`~langchain_image_embeddings.scale.shards.read_shard_info`),
and all its rows by :func:`check_rows` before the first is written (every row recorded as
embedded has a source, a SHA-256 of 64 hex digits and a finite, non-zero vector whose norm
float32 can hold; every failed row a known error code). The rows checked are kept for the
write when they fit in ``KEEP_CHECKED_BYTES``, else the file is read again. The shards before
it stay loaded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from langchain_core.documents import Document

from langchain_image_embeddings.errors import IMAGE_ERROR_CODES, ImageLoadError, StoreError
from langchain_image_embeddings.scale.shards import (
    META_COLUMNS,
    SHARD_DAMAGE_ADVICE,
    ShardInfo,
    iter_rows,
    read_shard_info,
    shard_files,
    vectors_of,
)
from langchain_image_embeddings.vectorstores._records import (
    MIN_NORM,
    AddResult,
    PendingAdd,
    check_model,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

__all__ = [
    "DEFAULT_LOAD_BATCH",
    "KEEP_CHECKED_BYTES",
    "LoadReport",
    "check_rows",
    "check_shards",
    "load_shards",
    "shard_documents",
]

#: Rows read from a shard file per step.
DEFAULT_LOAD_BATCH = 4096
#: A shard whose rows take up to this much memory is read once (checked, kept, written);
#: a larger one is read twice (checked, then written), so memory stays bounded.
KEEP_CHECKED_BYTES = 256 * 2**20


@dataclass
class LoadReport:
    """What :func:`load_shards` did.

    Attributes:
        result: Added / skipped ids, duplicates and the failures recorded in the shards,
            as :meth:`~langchain_image_embeddings.vectorstores.base.ImageVectorStore.add_images`
            reports them.
        shards: Shard files read.
        rows: Rows read (images and failures).
        seconds: Wall time.

    Example:
        .. code-block:: python

            report = load_shards(store, "shards")
            len(report.result.added), report.shards, report.rows_per_second
    """

    result: AddResult = field(default_factory=AddResult)
    shards: int = 0
    rows: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows loaded per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def check_shards(store: ImageVectorStore, files: list[Path]) -> list[ShardInfo]:
    """Read every shard's footer and refuse any written by another model than the store's.

    Raises:
        ModelMismatchError: A shard of another model (nothing is written).
        StoreError: An unreadable shard file, or a store without a model to check them by.
    """
    infos = [read_shard_info(f) for f in files]
    if store.embeddings is None and infos:
        model = infos[0].model_record.get("model")
        raise StoreError(
            f"the store has no model, so the vector space of shard {infos[0].path} ({model!r}) "
            f"cannot be checked: open the store with ImageEmbeddings({model!r}) (and the same "
            "model options), as `imgemb load` does"
        )
    for info in infos:
        check_model(info.model_record, store.embeddings, f"shard {info.path}")
    return infos


def _first(mask: np.ndarray) -> int | None:
    """The first ``True`` position of a boolean array, or ``None``."""
    import numpy as np

    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy (nulls as ``False``)."""
    import numpy as np

    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def check_rows(path: Path, batch: pa.RecordBatch, first_row: int = 0) -> None:
    """Refuse a batch of shard rows that :func:`load_shards` could not load as written.

    Rows recorded as embedded (``error_code`` null) need a ``source``, a ``sha256`` of 64
    lower-case hex digits and a ``vector`` that is not null, holds no NaN, infinite or null
    value and has a norm over ``MIN_NORM`` (the stores' own test) that float32 can hold;
    failed rows need a ``source`` and a known error code. The columns' presence and types
    are checked when the footer is read
    (:func:`~langchain_image_embeddings.scale.shards.read_shard_info`).

    Args:
        path: The shard file (for the message).
        batch: Rows of it, with the shard schema's columns.
        first_row: Position of the batch's first row in the file.

    Raises:
        StoreError: The first bad value, naming the file, the row (counted from 0 in the
            file) and the column.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = batch.column("error_code")
    embedded = _mask(codes.is_null())
    known = pa.array(sorted(IMAGE_ERROR_CODES), pa.string())
    sha = batch.column("sha256")
    hex_sha = _mask(pc.match_substring_regex(sha, "^[0-9a-f]{64}$"))
    vector = batch.column("vector")
    checks: list[tuple[str, np.ndarray, str]] = [
        ("source", _mask(batch.column("source").is_null()), "is null"),
        ("error_code", ~embedded & ~_mask(pc.is_in(codes, value_set=known)), "is unknown"),
        ("sha256", embedded & _mask(sha.is_null()), "is null in a row recorded as embedded"),
        ("sha256", embedded & ~hex_sha, "is not a SHA-256 (64 lower-case hex digits)"),
        ("vector", embedded & _mask(vector.is_null()), "is null in a row recorded as embedded"),
    ]
    for column, bad, problem in checks:
        row = _first(bad)
        if row is not None:
            _refuse(path, first_row + row, column, problem, batch.column(column)[row].as_py())
    rows = np.flatnonzero(embedded)
    matrix = vectors_of(batch, rows.tolist())  # a null inside a vector becomes NaN
    finite = np.isfinite(matrix).all(axis=1)
    with np.errstate(over="ignore"):
        norms = np.linalg.norm(matrix, axis=1)  # float32, as the stores compute it
    for bad, problem in (
        (~finite, "holds NaN, infinite or null values"),
        (finite & (norms <= MIN_NORM), f"has zero norm (<= {MIN_NORM}: no direction to compare)"),
        # the stores would keep such a vector as it is, not scaled to unit length
        (finite & ~np.isfinite(norms), "is too large (its norm overflows float32)"),
    ):
        at = _first(bad)
        if at is not None:
            _refuse(path, first_row + int(rows[at]), "vector", problem, None)


def _refuse(path: Path, row: int, column: str, problem: str, value: Any) -> NoReturn:
    shown = "" if value is None else f" ({str(value)[:80]!r})"
    raise StoreError(
        f"{path}: row {row}, column {column!r}{shown} {problem}: {SHARD_DAMAGE_ADVICE}"
    )


def _checked_batches(info: ShardInfo, batch_size: int) -> Iterable[pa.RecordBatch]:
    """The batches of a shard file, every row passed by :func:`check_rows` before the first
    is returned: the batches read for the check when they fit in ``KEEP_CHECKED_BYTES``,
    else the file read again."""
    kept: list[pa.RecordBatch] | None = []
    first = size = 0
    for batch in iter_rows(info.path, batch_size):
        check_rows(info.path, batch, first)
        first += batch.num_rows
        if kept is not None:
            size += batch.nbytes
            if size <= KEEP_CHECKED_BYTES:
                kept.append(batch)
            else:
                kept = None  # too large to keep: read again for the write
    return kept if kept is not None else iter_rows(info.path, batch_size)


def shard_documents(
    batch: pa.RecordBatch,
) -> tuple[list[Document], list[int], list[ImageLoadError]]:
    """Image documents of the good rows (metadata as ``describe_image_file`` gives it), their
    row numbers, and the failures recorded in the batch.

    Only the text and number columns become Python values (``to_pylist`` per column): the
    vector column stays in Arrow, read by :func:`vectors_of` for the rows written."""
    data = {name: batch.column(name).to_pylist() for name in _ROW_COLUMNS}
    sources, codes, shas = data["source"], data["error_code"], data["sha256"]
    meta_columns = [(key, data[key]) for key in META_COLUMNS]
    docs: list[Document] = []
    rows: list[int] = []
    failures: list[ImageLoadError] = []
    for row, source in enumerate(sources):
        code = codes[row]
        if code is not None:
            failures.append(ImageLoadError(str(source), str(data["error"][row] or ""), str(code)))
            continue
        meta: dict[str, Any] = {"source": source, "sha256": shas[row]}
        for key, values in meta_columns:
            if values[row] is not None:
                meta[key] = values[row]
        docs.append(Document(page_content=str(source), metadata=meta))
        rows.append(row)
    return docs, rows, failures


#: The columns of a shard that become document fields (all but the vector).
_ROW_COLUMNS = ("source", "sha256", "error_code", "error", *META_COLUMNS)


def _load_batch(
    store: ImageVectorStore, batch: pa.RecordBatch, replace_changed: bool, report: LoadReport
) -> None:
    result = report.result
    docs, rows, failures = shard_documents(batch)
    result.failures.extend(failures)
    if not docs:
        return
    # The add_images plan: group by content id, skip present ids, relink extra paths.
    plan = store.plan_add(docs, replace_changed=replace_changed)
    part = plan.result
    # the plan's content id of every document, in order: a repeated id names its last row
    row_of = dict(zip(part.input_ids, rows, strict=True))
    result.skipped.extend(part.skipped)
    result.duplicates.update(part.duplicates)
    result.input_ids.extend(part.input_ids)
    ids = [cid for cid, _ in plan.todo]
    vectors = vectors_of(batch, [row_of[cid] for cid in ids])
    written = [
        Document(id=cid, page_content=d.page_content, metadata=d.metadata) for cid, d in plan.todo
    ]
    # committed against the running result: its failures keep failed paths in their records
    store.commit_add(PendingAdd(ids, vectors, written, plan.relinked, plan.moved, result))


def load_shards(
    store: ImageVectorStore,
    path: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_LOAD_BATCH,
    replace_changed: bool = False,
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Add the vectors of Parquet shards to ``store`` (see the module docs).

    Args:
        store: Any image store, built with the model that wrote the shards.
        path: A shard file or a folder of ``shard-*.parquet`` files.
        batch_size: Rows read and written per step.
        replace_changed: As in ``add_images``: a path whose bytes changed leaves its old
            record. Costs a scan of every record per batch, so off by default (shards of a
            new corpus have nothing to replace).
        progress: Called with the number of rows after every batch.

    Returns:
        The report; ``report.result`` is an ``AddResult``.

    Raises:
        ModelMismatchError: A shard written by another model; nothing is written.
        StoreError: An index plan of the store that the shards' rows could not train
            (FAISS: fewer than 39 vectors per inverted list); nothing is written. No
            shards at ``path``, an unreadable shard, or a damaged one (the
            message names the file, the column and the row; nothing of that shard is
            written, the shards before it stay loaded).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.scale.load import load_shards

            report = load_shards(store, "shards", batch_size=10_000)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    started = time.perf_counter()
    files = shard_files(path)
    infos = check_shards(store, files)
    check_load = getattr(store.backend, "check_load", None)
    if check_load is not None:  # an index plan the load could not train: refused first
        check_load(sum(info.rows - info.failures for info in infos))
    report = LoadReport()
    saved = False
    for info in infos:
        for batch in _checked_batches(info, batch_size):  # nothing of a damaged shard written
            _load_batch(store, batch, replace_changed, report)
            report.rows += batch.num_rows
            if progress is not None:
                progress(batch.num_rows)
        if store.backend.has_unsaved_changes():
            store.persist()  # FAISS: an incremental save, so a killed load resumes from here
            saved = True
        report.shards += 1
    if not saved or store.backend.has_unsaved_changes():
        # once for a write-through store (Chroma, Milvus): what it wrote is durable on
        # arrival, so a rerun skips it; Milvus flushes here (seals the rows into indexed
        # segments for fast searches) once per load, not per shard: each flush took seconds on
        # Milvus Lite (issue 26). A FAISS load that wrote nothing saves once, as before.
        store.persist()
    report.seconds = time.perf_counter() - started
    return report
