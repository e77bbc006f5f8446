"""Bulk-loading Parquet shards into any image store, without embedding anything again.

Rows go through the same steps as :meth:`ImageVectorStore.add_images
<langchain_image_embeddings.vectorstores.base.ImageVectorStore.add_images>`, with the
shard's vector in place of the model: the store plans the rows (``plan_add``: inputs are
grouped by content id, identical bytes at several paths share one record that lists every
path in ``sources``, ids already in the store are skipped and their ``sources`` gain the
new paths), and the new vectors are written by ``commit_add`` in batches. The loader
depends on the store contract only; the stores know nothing of shards. Loading the same shards again writes nothing; a load killed
midway is resumed by running it again (FAISS stores are saved after every shard file).

Every shard's model record (spec, dimension, fingerprint) must match the store's model:
a mismatch raises the stores' own :class:`~langchain_image_embeddings.errors.ModelMismatchError`
before anything is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings.errors import ImageLoadError, StoreError
from langchain_image_embeddings.scale.shards import (
    META_COLUMNS,
    ShardInfo,
    iter_rows,
    read_shard_info,
    shard_files,
    vectors_of,
)
from langchain_image_embeddings.vectorstores._records import (
    AddResult,
    PendingAdd,
    check_model,
    content_id,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

__all__ = ["DEFAULT_LOAD_BATCH", "LoadReport", "check_shards", "load_shards"]

#: Rows read from a shard file per step.
DEFAULT_LOAD_BATCH = 4096


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


def _documents(batch: pa.RecordBatch) -> tuple[list[Document], list[int], list[ImageLoadError]]:
    """Image documents of the good rows (metadata as ``describe_image_file`` gives it), their
    row numbers, and the failures recorded in the batch."""
    data = batch.to_pydict()
    docs: list[Document] = []
    rows: list[int] = []
    failures: list[ImageLoadError] = []
    for row, source in enumerate(data["source"]):
        code = data["error_code"][row]
        if code is not None:
            failures.append(ImageLoadError(str(source), str(data["error"][row] or ""), str(code)))
            continue
        meta: dict[str, Any] = {"source": source, "sha256": data["sha256"][row]}
        for key in META_COLUMNS:
            if data[key][row] is not None:
                meta[key] = data[key][row]
        docs.append(Document(page_content=str(source), metadata=meta))
        rows.append(row)
    return docs, rows, failures


def _load_batch(
    store: ImageVectorStore, batch: pa.RecordBatch, replace_changed: bool, report: LoadReport
) -> None:
    result = report.result
    docs, rows, failures = _documents(batch)
    result.failures.extend(failures)
    if not docs:
        return
    model_id = store.image_embeddings.model_id
    row_of = {
        content_id(d.metadata["sha256"], model_id): r for d, r in zip(docs, rows, strict=True)
    }
    # The add_images plan: group by content id, skip present ids, relink extra paths.
    plan = store.plan_add(docs, replace_changed=replace_changed)
    part = plan.result
    result.skipped.extend(part.skipped)
    result.duplicates.update(part.duplicates)
    result.input_ids.extend(part.input_ids)
    ids = [cid for cid, _ in plan.todo]
    vectors = (
        vectors_of(batch, [row_of[cid] for cid in ids]) if ids else vectors_of(batch.slice(0, 0))
    )
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
        StoreError: No shards at ``path``, or an unreadable shard.

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
    report = LoadReport()
    for info in infos:
        for batch in iter_rows(info.path, batch_size):
            _load_batch(store, batch, replace_changed, report)
            report.rows += batch.num_rows
            if progress is not None:
                progress(batch.num_rows)
        store.persist()  # FAISS: an incremental save, so a killed load resumes from here
        report.shards += 1
    report.seconds = time.perf_counter() - started
    return report
