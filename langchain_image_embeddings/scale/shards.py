"""The Parquet shard format: one row per input, written atomically, one file per shard.

Columns (in input order)::

    id          string        content id (file hash + model, as the stores use); null on failure
    source      string        the input (absolute path or URI)
    sha256      string        hash of the bytes; null when they could not be read
    vector      fixed_size_list<float32>[dim]   unit vector; null on failure
    width, height  int32      image size from the header
    format      string        JPEG, PNG ...
    bytes       int64         encoded size
    mtime       float64       modification time of a local file (null otherwise)
    error_code  string        null on success, else an ImageLoadError code
    error       string        the reason, for a person

The schema metadata holds ``imgemb.model`` (the model record the stores check: spec,
dimension, fingerprint), ``imgemb.model_kwargs`` (to rebuild the model) and
``imgemb.shard`` (index, input digest, row count). A shard file only ever appears complete
(written to a temporary file, fsynced, renamed), so "the file exists and its digest matches
the plan" means "this shard is done": a rerun skips it and a killed run resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._atomic import TMP_SUFFIX, write_atomic_with
from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.scale._deps import require_pyarrow
from langchain_image_embeddings.scale.plan import SHARD_PREFIX, SHARD_SUFFIX, Shard
from langchain_image_embeddings.vectorstores._records import content_id, model_difference

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "META_COLUMNS",
    "MODEL_KEY",
    "MODEL_KWARGS_KEY",
    "SHARD_DAMAGE_ADVICE",
    "SHARD_FORMAT_VERSION",
    "SHARD_KEY",
    "ShardInfo",
    "ShardRows",
    "check_shard_model",
    "is_complete",
    "iter_rows",
    "read_shard_info",
    "remove_partial_files",
    "shard_files",
    "shard_schema",
    "shard_table",
    "vectors_of",
    "write_shard",
]


#: Version of the shard layout (``imgemb.shard`` metadata).
SHARD_FORMAT_VERSION = 1
MODEL_KEY = b"imgemb.model"
MODEL_KWARGS_KEY = b"imgemb.model_kwargs"
SHARD_KEY = b"imgemb.shard"

#: What to do about a shard that fails a check (the end of every such ``StoreError``).
SHARD_DAMAGE_ADVICE = (
    "the shard is damaged or was not written by `imgemb embed-dataset`, and nothing of it "
    "was loaded: delete it, run embed-dataset again to rewrite it, then run the load again "
    "(it skips what is already loaded)"
)

#: Metadata columns copied into a store record, as ``describe_image_file`` names them.
META_COLUMNS = ("width", "height", "format", "bytes", "mtime")


@dataclass
class ShardRows:
    """What an engine computed for one shard, one entry per input (in input order).

    Attributes:
        shard: The shard.
        metas: Per input, the metadata from :func:`~langchain_image_embeddings.images.read_image_source`
            (``{"source": ...}`` alone when it could not be read; ``None``: the source is
            the input as given).
        vectors: ``float32`` ``(len(shard), dim)``; rows of failed inputs are ignored.
        errors: Per input, ``None`` or ``(code, reason)``.

    Example:
        .. code-block:: python

            rows = ShardRows(shard, metas, vectors, errors)
            write_shard(out_dir, rows, model_record={"model": "timm:efficientnet_lite0"})
    """

    shard: Shard
    metas: list[dict[str, Any] | None]
    vectors: np.ndarray
    errors: list[tuple[str, str] | None]

    @property
    def failures(self) -> int:
        """Number of inputs that failed."""
        return sum(e is not None for e in self.errors)


def shard_schema(dim: int) -> pa.Schema:
    """The Arrow schema of a shard of ``dim``-dimensional vectors (metadata added on write)."""
    pa = require_pyarrow()
    return pa.schema(
        [
            ("id", pa.string()),
            ("source", pa.string()),
            ("sha256", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("format", pa.string()),
            ("bytes", pa.int64()),
            ("mtime", pa.float64()),
            ("error_code", pa.string()),
            ("error", pa.string()),
        ]
    )


def shard_table(
    rows: ShardRows, model_record: dict[str, Any], model_kwargs: dict[str, Any] | None = None
) -> pa.Table:
    """The Arrow table of a shard, with the model and shard metadata in its schema."""
    import numpy as np

    pa = require_pyarrow()
    import pyarrow.compute as pc

    shard = rows.shard
    n = len(shard)
    if len(rows.metas) != n or len(rows.errors) != n or len(rows.vectors) != n:
        raise ValueError(f"shard {shard.index}: expected {n} rows of metadata, vectors, errors")
    dim = int(model_record["dim"])
    model_id = str(model_record["model"])
    ok = np.array([e is None for e in rows.errors], dtype=bool)
    flat = np.ascontiguousarray(rows.vectors, dtype=np.float32).reshape(-1)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
    vectors = pc.if_else(pa.array(ok), vectors, pa.nulls(n, vectors.type))
    metas = [m if m is not None else {} for m in rows.metas]

    def column(key: str) -> list[Any]:
        return [m.get(key) if good else None for m, good in zip(metas, ok, strict=True)]

    sha = [m.get("sha256") for m in metas]
    columns = {
        "id": [
            content_id(s, model_id) if good and s else None for s, good in zip(sha, ok, strict=True)
        ],
        "source": [str(m.get("source") or shard.inputs[i]) for i, m in enumerate(metas)],
        "sha256": sha,
        "vector": vectors,
        **{key: column(key) for key in META_COLUMNS},
        "error_code": [e[0] if e else None for e in rows.errors],
        "error": [e[1] if e else None for e in rows.errors],
    }
    schema = shard_schema(dim).with_metadata(
        {
            MODEL_KEY: json.dumps(model_record, sort_keys=True),
            MODEL_KWARGS_KEY: json.dumps(model_kwargs or {}, sort_keys=True, default=str),
            SHARD_KEY: json.dumps(
                {
                    "format_version": SHARD_FORMAT_VERSION,
                    "index": shard.index,
                    "digest": shard.digest,
                    "rows": n,
                    "failures": rows.failures,
                }
            ),
        }
    )
    return pa.Table.from_pydict(columns, schema=schema)


def write_shard(
    out_dir: str | os.PathLike[str],
    rows: ShardRows,
    model_record: dict[str, Any],
    model_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write one shard file atomically (temporary file, fsync, rename) and return its path."""
    require_pyarrow()
    import pyarrow.parquet as pq

    table = shard_table(rows, model_record, model_kwargs)
    target = Path(out_dir) / rows.shard.file_name
    return write_atomic_with(target, lambda tmp: pq.write_table(table, tmp))


@dataclass(frozen=True)
class ShardInfo:
    """The metadata of a written shard file (read from its footer, no rows).

    Example:
        .. code-block:: python

            info = read_shard_info("shards/shard-000000.parquet")
            info.rows, info.failures, info.model_record["model"]
    """

    path: Path
    index: int
    digest: str
    rows: int
    failures: int
    model_record: dict[str, Any]
    model_kwargs: dict[str, Any]


def read_shard_info(path: str | os.PathLike[str]) -> ShardInfo:
    """Read a shard's footer metadata.

    Raises:
        StoreError: Not a shard file written by this package (or unreadable), or one
            whose columns are not those of :func:`shard_schema` for its model's dimension
            (the message names the column).
    """
    require_pyarrow()
    import pyarrow.parquet as pq

    file = Path(path)
    try:
        schema = pq.read_schema(file)
        meta = schema.metadata or {}
        shard = json.loads(meta[SHARD_KEY])
        record = json.loads(meta[MODEL_KEY])
        kwargs = json.loads(meta.get(MODEL_KWARGS_KEY, b"{}"))
    except (OSError, KeyError, ValueError) as exc:
        raise StoreError(f"{file} is not a readable imgemb shard: {exc}") from exc
    _check_columns(file, schema, record.get("dim"))
    return ShardInfo(
        file,
        int(shard["index"]),
        str(shard["digest"]),
        int(shard["rows"]),
        int(shard.get("failures", 0)),
        dict(record),
        dict(kwargs),
    )


def _same_type(found: pa.DataType, expected: pa.DataType) -> bool:
    """Type equality, a list's item name aside (Parquet writers call it item or element)."""
    if isinstance(found, type(expected)) and hasattr(expected, "list_size"):
        return bool(
            found.list_size == expected.list_size and found.value_type == expected.value_type
        )
    return bool(found == expected)


def _check_columns(file: Path, schema: pa.Schema, dim: Any) -> None:
    """Refuse a shard whose columns are not those :func:`shard_schema` writes (a missing
    column, another type, vectors of another dimension than its model record's ``dim``).
    Extra columns are ignored."""
    try:
        expected = shard_schema(int(dim))
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"{file} is not a readable imgemb shard: its model record has no dimension ({dim!r})"
        ) from exc
    for field in expected:
        index = schema.get_field_index(field.name)  # -1: missing; -1 too if named twice
        if index < 0:
            twice = schema.get_all_field_indices(field.name)
            problem = "appears more than once" if twice else "is missing"
        elif not _same_type(found := schema.field(index).type, field.type):
            problem = f"has type {found}, expected {field.type}"
        else:
            continue
        raise StoreError(f"{file}: column {field.name!r} {problem}: {SHARD_DAMAGE_ADVICE}")


def shard_files(path: str | os.PathLike[str]) -> list[Path]:
    """The shard files of a folder (sorted by index), or ``[path]`` for one file.

    Raises:
        StoreError: No such file or folder, or a folder without shard files.
    """
    target = Path(path)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise StoreError(f"no shard file or folder at {target}")
    files = sorted(
        p
        for p in target.iterdir()
        if p.name.startswith(SHARD_PREFIX) and p.name.endswith(SHARD_SUFFIX) and p.is_file()
    )
    if not files:
        raise StoreError(f"{target} holds no {SHARD_PREFIX}*{SHARD_SUFFIX} files")
    return files


def remove_partial_files(out_dir: str | os.PathLike[str]) -> int:
    """Delete temporary shard files a killed run left behind; returns how many."""
    removed = 0
    for tmp in Path(out_dir).glob(f"{SHARD_PREFIX}*{SHARD_SUFFIX}.*{TMP_SUFFIX}"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def check_shard_model(info: ShardInfo, record: dict[str, Any]) -> None:
    """Refuse a shard written by another model than ``record`` describes.

    Raises:
        ModelMismatchError: The model, dimension or fingerprint differs.
    """
    stored = info.model_record
    key = model_difference(stored, record)
    if key is not None:
        raise ModelMismatchError(
            f"{info.path} was written by model {stored.get('model')!r} "
            f"({stored.get('dim')}-d); the current model is {record.get('model')!r} "
            f"({record.get('dim')}-d) ({key} differs): use another output folder, or the "
            "same model"
        )


def is_complete(path: Path, shard: Shard, record: dict[str, Any]) -> bool:
    """Whether ``path`` holds ``shard`` already embedded by this model.

    Raises:
        ModelMismatchError: It was written by another model (never silently mixed).
    """
    if not path.is_file():
        return False
    try:
        info = read_shard_info(path)
    except StoreError:
        return False  # unreadable: written again (atomically) over it
    check_shard_model(info, record)
    return info.index == shard.index and info.digest == shard.digest and info.rows == len(shard)


def iter_rows(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Record batches of a shard file, ``batch_size`` rows at a time.

    Raises:
        StoreError: The file's rows cannot be read (damaged after it was written: its
            footer is read first, so this is damage inside the data).
    """
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            yield from parquet.iter_batches(batch_size=batch_size)
    except (OSError, pa.ArrowException) as exc:
        reason = " ".join(str(exc).split()).rstrip(".")  # pyarrow's are multi-line
        raise StoreError(
            f"{path} is damaged ({reason}): delete it and run embed-dataset again to rewrite it "
            "(the rows loaded before it stay, a rerun of the load skips them)"
        ) from exc


def vectors_of(batch: pa.RecordBatch | pa.Table, rows: Sequence[int] | None = None) -> np.ndarray:
    """The ``vector`` column (non-null rows, or ``rows``) as a ``float32`` ``(n, dim)`` array."""
    import numpy as np
    import pyarrow as pa

    column = batch.column("vector")
    if rows is not None:
        column = column.take(pa.array(list(rows), pa.int64()))  # typed: [] is no null array
    dim = column.type.list_size
    if len(column) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat.reshape(-1, dim), dtype=np.float32)
