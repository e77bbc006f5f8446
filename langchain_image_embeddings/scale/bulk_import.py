"""Parquet shards into a Milvus server through its own bulk import (import jobs), instead of
``upsert`` requests.

:func:`write_import_files` turns shards into Parquet files with the columns of a
:class:`~langchain_image_embeddings.vectorstores.MilvusImageStore`'s collection, in a local
folder or in object storage (``s3://BUCKET/PREFIX``; endpoint and credentials from the
environment, as for every object-storage URI of this package). The rows are those
:func:`~langchain_image_embeddings.scale.load.load_shards` would write: the store plans
them (``plan_add``: identical bytes at several paths are one record listing every path in
``sources``; ids already in the collection are skipped), and every row passes the store's
own checks (sizes of ids and texts, vectors of the collection's dimension, finite,
non-zero, scaled to unit length).

:func:`import_shards` also runs the import: it first asks the server for its import jobs
(Milvus Lite has none: it says so at once, before any file is written), writes the files
into the bucket the server reads, creates import jobs of up to ``MAX_FILES_PER_JOB`` files,
polls them to the end, checks that the server imported every row written, flushes and loads
the collection, and adds the paths of records that gained paths (a duplicate met in a later
batch, or a record already in the collection) to their ``sources``.

Every shard is checked (footer, model, every row: :func:`~langchain_image_embeddings.scale.load.check_rows`)
before the first file is written: a damaged shard raises a
:class:`~langchain_image_embeddings.errors.StoreError` naming the file, the row and the
column, and nothing is written or imported.

Example:
    .. code-block:: python

        from langchain_image_embeddings import ImageEmbeddings
        from langchain_image_embeddings.scale.bulk_import import import_shards
        from langchain_image_embeddings.vectorstores import MilvusImageStore

        store = MilvusImageStore.connect("http://127.0.0.1:19530",
                                         ImageEmbeddings("timm:efficientnet_lite0"),
                                         collection_name="photos")
        report = import_shards(store, "shards", "s3://a-bucket/imgemb-import",
                               url="http://127.0.0.1:19530", token="root:Milvus")
        report.imported_rows, report.files.keys
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings.errors import (
    ImageLoadError,
    MilvusImportError,
    StoreError,
)
from langchain_image_embeddings.scale.load import (
    DEFAULT_LOAD_BATCH,
    check_rows,
    check_shards,
    shard_documents,
)
from langchain_image_embeddings.scale.shards import (
    ShardInfo,
    iter_rows,
    shard_files,
    vectors_of,
)
from langchain_image_embeddings.vectorstores._records import (
    AddResult,
    content_id,
    record_paths,
    with_paths,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from langchain_image_embeddings.images import ImageLoadOptions
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore
    from langchain_image_embeddings.vectorstores.milvus._import import ImportProgress
    from langchain_image_embeddings.vectorstores.milvus._store import MilvusImageStore

__all__ = [
    "DEFAULT_ROWS_PER_FILE",
    "IMPORT_FILE_PREFIX",
    "ImportFiles",
    "MilvusImportReport",
    "import_shards",
    "write_import_files",
]

#: Rows of one import file (about 200 MB of 512-d vectors): Milvus reads each file as one
#: task and takes at most ``MAX_FILES_PER_JOB`` files per job.
DEFAULT_ROWS_PER_FILE = 100_000
#: Names of the import files: ``part-000000.parquet``, ``part-000001.parquet`` ...
IMPORT_FILE_PREFIX = "part-"


@dataclass
class ImportFiles:
    """What :func:`write_import_files` wrote.

    Attributes:
        paths: The files, as their filesystem names them (a local path, or
            ``BUCKET/KEY`` in object storage).
        keys: The same files as keys in their bucket, the names an import job takes
            (empty for a local folder: upload the files into the server's bucket first).
        rows: Rows written into them.
        result: ``added``: the ids written (imported once a job took the files);
            ``skipped``: ids already in the collection; ``duplicates``; ``failures``: the
            inputs the shards record as failed at embedding.
        new_paths: Records that gain paths, applied after the import: ``{id: paths}``.
        shards: Shard files read.
        rows_read: Rows read from them (images and failures).

    Example:
        .. code-block:: python

            files = write_import_files(store, "shards", "import-files")
            files.rows, files.paths
    """

    paths: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    rows: int = 0
    result: AddResult = field(default_factory=AddResult)
    new_paths: dict[str, list[str]] = field(default_factory=dict)
    shards: int = 0
    rows_read: int = 0


@dataclass
class MilvusImportReport:
    """What :func:`import_shards` did.

    Attributes:
        files: The files written (and their rows, ids, duplicates, failures).
        jobs: The final progress of each import job, in order.
        imported_rows: Rows the server reports imported (all jobs).
        relinked: Records whose ``sources`` gained paths after the import.
        seconds: Wall time (writing files, importing, refreshing).

    Example:
        .. code-block:: python

            report = import_shards(store, "shards", "s3://a-bucket/x", url=url)
            report.imported_rows, [job.job_id for job in report.jobs]
    """

    files: ImportFiles
    jobs: list[ImportProgress] = field(default_factory=list)
    imported_rows: int = 0
    relinked: int = 0
    seconds: float = 0.0


def _open_destination(
    destination: str, filesystem: Any, object_storage: ImageLoadOptions | None
) -> tuple[Any, str, bool]:
    """``(pyarrow filesystem, base path, is a bucket)`` of ``destination``."""
    import pyarrow.fs as pafs

    from langchain_image_embeddings.images import ImageLoadOptions, open_object_storage

    if filesystem is not None:
        return filesystem, destination.strip("/"), True
    if "://" in destination:
        options = object_storage or ImageLoadOptions()
        if not options.allow_object_storage:
            options = ImageLoadOptions(
                allow_object_storage=True, allowed_hosts=options.allowed_hosts
            )
        try:
            fs, path = open_object_storage(destination, options)
        except ImageLoadError as err:
            hint = " (imgemb load: --trusted-endpoint HOST)" if err.code == "blocked_url" else ""
            raise StoreError(
                f"cannot write import files to {destination}: {err.reason} [{err.code}]{hint}"
            ) from err
        return fs, path.strip("/"), True
    folder = Path(destination).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    return pafs.LocalFileSystem(), str(folder), False


class _FileWriter:
    """Import files of up to ``rows_per_file`` rows each, written one after another."""

    def __init__(self, filesystem: Any, base: str, rows_per_file: int) -> None:
        self.filesystem = filesystem
        self.base = base
        self.rows_per_file = rows_per_file
        self.paths: list[str] = []
        self._writer: Any = None
        self._rows = 0

    def _open(self) -> None:
        import pyarrow.parquet as pq

        from langchain_image_embeddings.vectorstores.milvus._import import import_schema

        if not self.paths:
            with contextlib.suppress(OSError):  # object storage has no folders to make
                self.filesystem.create_dir(self.base, recursive=True)
        path = f"{self.base}/{IMPORT_FILE_PREFIX}{len(self.paths):06d}.parquet"
        self.paths.append(path)
        self._writer = pq.ParquetWriter(path, import_schema(), filesystem=self.filesystem)
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                self._open()
            take = min(self.rows_per_file - self._rows, table.num_rows - start)
            self._writer.write_table(table.slice(start, take))
            self._rows += take
            start += take
            if self._rows >= self.rows_per_file:
                self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def remove(self) -> None:
        """Delete what was written (after a failure: no half set of files is left)."""
        with contextlib.suppress(Exception):
            self.close()
        for path in self.paths:
            with contextlib.suppress(Exception):
                self.filesystem.delete_file(path)


def _merge(paths_of: dict[str, list[str]], cid: str, paths: list[str]) -> None:
    paths_of[cid] = list(dict.fromkeys([*paths_of.get(cid, []), *paths]))


def _check_every_row(infos: list[ShardInfo], batch_size: int) -> None:
    """Refuse a damaged shard before anything is written (see ``check_rows``)."""
    for info in infos:
        first = 0
        for batch in iter_rows(info.path, batch_size):
            check_rows(info.path, batch, first)
            first += batch.num_rows


def _convert(
    store: ImageVectorStore,
    batch: pa.RecordBatch,
    out: ImportFiles,
    primary_of: dict[str, str],
    writer: _FileWriter,
) -> None:
    """Plan a batch as ``load_shards`` would and write its new rows into the files."""
    from langchain_image_embeddings.vectorstores.milvus._import import import_table

    result = out.result
    docs, rows, failures = shard_documents(batch)
    result.failures.extend(failures)
    if not docs:
        return
    model_id = store.image_embeddings.model_id
    row_of = {
        content_id(d.metadata["sha256"], model_id): r for d, r in zip(docs, rows, strict=True)
    }
    plan = store.plan_add(docs, replace_changed=False)
    result.skipped.extend(plan.result.skipped)
    result.duplicates.update(plan.result.duplicates)
    result.input_ids.extend(plan.result.input_ids)
    for cid, paths in plan.relinked.items():  # already in the collection: gains paths
        _merge(out.new_paths, cid, paths)
    todo: list[tuple[str, Document]] = []
    for cid, doc in plan.todo:
        primary = primary_of.get(cid)
        if primary is None:
            primary_of[cid] = str(doc.metadata["source"])
            todo.append((cid, doc))
            continue
        # written into a file from an earlier batch: its record gains these paths
        paths = record_paths(doc.metadata)
        _merge(out.new_paths, cid, paths)
        for path in paths:
            result.duplicates.pop(path, None)
            if path != primary:
                result.duplicates[path] = primary
    if not todo:
        return
    ids = [cid for cid, _ in todo]
    table = import_table(
        ids, vectors_of(batch, [row_of[cid] for cid in ids]), [d for _, d in todo], store.dim
    )
    writer.write(table)
    result.added.extend(ids)
    out.rows += len(ids)


def write_import_files(
    store: ImageVectorStore,
    shards: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    filesystem: Any = None,
    object_storage: ImageLoadOptions | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    batch_size: int = DEFAULT_LOAD_BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportFiles:
    """Write the rows that loading ``shards`` into ``store`` would add as Milvus import
    files (``part-NNNNNN.parquet``; see the module docs).

    Args:
        store: A :class:`~langchain_image_embeddings.vectorstores.MilvusImageStore` built with
            the model that wrote the shards (its collection says which ids exist already).
        shards: A shard file or a folder of ``shard-*.parquet`` files.
        destination: A local folder, or ``s3://BUCKET/PREFIX`` (any object-storage URI of
            this package; endpoint and credentials from the environment, e.g.
            ``AWS_ENDPOINT_URL`` for MinIO), or ``BUCKET/PREFIX`` in ``filesystem``.
        filesystem: A ``pyarrow.fs.FileSystem`` to write into (e.g. an ``S3FileSystem``
            configured in code); ``destination`` is then a path in it, bucket first.
        object_storage: The policy for an object-storage ``destination``: a configured
            endpoint on a loopback or private address (a local MinIO) is refused unless its
            host is in ``allowed_hosts``.
        rows_per_file: Most rows of one file.
        batch_size: Rows read and planned per step.
        progress: Called with the number of rows after every batch.

    Returns:
        The files and what went into them.

    Raises:
        ModelMismatchError: A shard written by another model; nothing is written.
        StoreError: No shards, or a damaged one (naming the file, the row and the column),
            or a destination that cannot be written; nothing is left written.

    Example:
        .. code-block:: python

            files = write_import_files(store, "shards", "s3://a-bucket/imgemb-import",
                                       object_storage=ImageLoadOptions(
                                           allowed_hosts=("127.0.0.1",)))
            files.keys   # ['imgemb-import/part-000000.parquet', ...]
    """
    if rows_per_file < 1 or batch_size < 1:
        raise ValueError("rows_per_file and batch_size must be at least 1")
    _milvus_store(store)
    infos = check_shards(store, shard_files(shards))
    _check_every_row(infos, batch_size)
    target = os.fspath(destination)
    fs, base, bucket = _open_destination(target, filesystem, object_storage)
    out = ImportFiles()
    writer = _FileWriter(fs, base, rows_per_file)
    primary_of: dict[str, str] = {}
    try:
        for info in infos:
            for batch in iter_rows(info.path, batch_size):
                _convert(store, batch, out, primary_of, writer)
                out.rows_read += batch.num_rows
                if progress is not None:
                    progress(batch.num_rows)
            out.shards += 1
        writer.close()
    except OSError as exc:
        writer.remove()
        raise StoreError(f"cannot write import files to {target}: {exc}") from exc
    except BaseException:
        writer.remove()
        raise
    out.paths = list(writer.paths)
    out.keys = [p.partition("/")[2] for p in out.paths] if bucket else []
    return out


def _milvus_store(store: ImageVectorStore) -> MilvusImageStore:
    from langchain_image_embeddings.vectorstores.milvus._store import MilvusImageStore

    if not isinstance(store, MilvusImageStore):
        raise StoreError(
            f"Milvus bulk import needs a Milvus store, not {type(store).__name__}: use "
            "load_shards (`imgemb load` without --milvus-import)"
        )
    return store


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _relink(store: ImageVectorStore, new_paths: dict[str, list[str]]) -> int:
    """Add ``new_paths`` to the ``sources`` of their records; how many changed.

    Raises:
        StoreError: A record that should be in the collection is not.
    """
    changed = 0
    for chunk in _batches(list(new_paths), 1000):
        docs = {d.id: d for d in store.get_by_ids(chunk)}
        ids: list[str] = []
        metas: list[dict[str, Any]] = []
        for cid in chunk:
            doc = docs.get(cid)
            if doc is None:
                raise StoreError(
                    f"record {cid} (paths {new_paths[cid][:3]}) is not in the collection after "
                    "the import: run the import again (it adds what is missing)"
                )
            known = record_paths(doc.metadata)
            extra = [p for p in new_paths[cid] if p not in known]
            if extra:
                ids.append(cid)
                metas.append(with_paths(doc.metadata, known + extra))
        if ids:
            store.update_metadata(ids, metas)
            changed += len(ids)
    return changed


def import_shards(
    store: ImageVectorStore,
    shards: str | os.PathLike[str],
    destination: str,
    *,
    url: str,
    token: str = "",
    db_name: str = "",
    filesystem: Any = None,
    object_storage: ImageLoadOptions | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    batch_size: int = DEFAULT_LOAD_BATCH,
    timeout_s: float | None = None,
    poll_s: float | None = None,
    progress: Callable[[int], None] | None = None,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> MilvusImportReport:
    """Import ``shards`` into a Milvus store's collection through Milvus import jobs (see
    the module docs).

    Args:
        store: A :class:`~langchain_image_embeddings.vectorstores.MilvusImageStore` on the
            server at ``url``, built with the model that wrote the shards.
        shards: A shard file or a folder of ``shard-*.parquet`` files.
        destination: ``s3://BUCKET/PREFIX`` in the bucket the server reads (its
            ``minio.bucketName``), or ``BUCKET/PREFIX`` in ``filesystem``.
        url: The server's REST address, ``http://HOST:PORT`` (the gRPC port of Milvus 2.4+).
        token: ``USER:PASSWORD`` or an API key, when the server checks them.
        db_name: The database (default: the server's default).
        filesystem, object_storage, rows_per_file, batch_size, progress: As for
            :func:`write_import_files`.
        timeout_s: Most seconds one import job may run (``None``: no limit).
        poll_s: Seconds between progress requests (default ``POLL_S``).
        on_progress: Called with every progress read of a job.

    Raises:
        MilvusImportError: The server has no import jobs (Milvus Lite: said before anything
            is written), refused or failed a job (naming the job, the file and its reason),
            a job ran past ``timeout_s``, or it imported fewer rows than were written.
        ModelMismatchError, StoreError: As for :func:`write_import_files`; a store that is
            not a Milvus store; a local ``destination`` (the server cannot read it).

    Example:
        .. code-block:: python

            report = import_shards(store, "shards", "s3://a-bucket/imgemb-import",
                                   url="http://127.0.0.1:19530")
            report.imported_rows
    """
    from langchain_image_embeddings.vectorstores.milvus._import import (
        MAX_FILES_PER_JOB,
        POLL_S,
        MilvusImportJobs,
        refresh_after_import,
    )

    started = time.perf_counter()
    milvus = _milvus_store(store)
    if filesystem is None and "://" not in destination:
        raise StoreError(
            f"Milvus reads import files from its own bucket, not from the local folder "
            f"{destination!r}: give s3://BUCKET/PREFIX (or write_import_files, then upload "
            "the files and create the job yourself)"
        )
    jobs = MilvusImportJobs(url, token=token, db_name=db_name, timeout=milvus.timeout)
    jobs.list(milvus.collection_name)  # no import jobs (Milvus Lite): said before any write
    files = write_import_files(
        store,
        shards,
        destination,
        filesystem=filesystem,
        object_storage=object_storage,
        rows_per_file=rows_per_file,
        batch_size=batch_size,
        progress=progress,
    )
    report = MilvusImportReport(files)
    if files.rows:
        for keys in _batches(files.keys, MAX_FILES_PER_JOB):
            job = jobs.create(milvus.collection_name, keys)
            state = jobs.wait(
                job,
                timeout_s=timeout_s,
                poll_s=POLL_S if poll_s is None else poll_s,
                on_progress=on_progress,
            )
            report.jobs.append(state)
            report.imported_rows += state.imported_rows
        if report.imported_rows != files.rows:
            last = report.jobs[-1].job_id
            raise MilvusImportError(
                f"Milvus imported {report.imported_rows} rows of the {files.rows} written to "
                f"{destination} (jobs {', '.join(j.job_id for j in report.jobs)})",
                job_id=last,
                reason="row count",
            )
        refresh_after_import(milvus.client, milvus.collection_name, timeout=milvus.timeout)
    report.relinked = _relink(store, files.new_paths)
    report.seconds = time.perf_counter() - started
    return report
