"""Damaged Parquet shards (issue 24, item 2): ``load_shards`` and ``imgemb load`` refuse them
with a ``StoreError`` naming the file, the row and the column (``imgemb load`` exits 5), and
write nothing from a refused shard. Each case is one an outside probe reproduced: before the
fix they gave ``KeyError``, ``AttributeError``, a length mismatch (exit 2), a record whose id
was derived from the text ``None``, or a message blaming a model that never ran."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.scale import load
from langchain_image_embeddings.scale.load import load_shards
from langchain_image_embeddings.scale.plan import Shard
from langchain_image_embeddings.scale.shards import ShardRows, shard_table
from langchain_image_embeddings.vectorstores import FAISSImageStore
from langchain_image_embeddings.vectorstores._records import model_record
from tests.scale_tests.corpus import save_tiny_model

ROWS = 4
DAMAGED_ROW = 2  # counted from 0, in the damaged (second) shard


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``local:DIR`` of a tiny saved model, so ``imgemb load`` can rebuild it from a shard."""
    return save_tiny_model(tmp_path_factory.mktemp("shard-damage-model"))


@pytest.fixture(scope="module")
def embeddings(tiny_model: str) -> Any:
    from langchain_image_embeddings import ImageEmbeddings

    return ImageEmbeddings(tiny_model, device="cpu")


def _table(embeddings: Any, index: int) -> pa.Table:
    """A well-formed shard of ``ROWS`` rows (the last one a recorded failure)."""
    record = model_record(embeddings)
    dim = int(record["dim"])
    inputs = tuple(f"/photos/{index}/{n}.jpg" for n in range(ROWS))
    rng = np.random.default_rng(index)
    vectors = rng.standard_normal((ROWS, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metas: list[dict[str, Any] | None] = []
    for p in inputs[:-1]:
        sha = hashlib.sha256(p.encode()).hexdigest()
        meta: dict[str, Any] = {"source": p, "sha256": sha, "width": 64, "height": 48}
        metas.append({**meta, "format": "JPEG", "bytes": 1000, "mtime": 1.0})
    metas.append({"source": inputs[-1]})  # a failed input: its source alone
    errors: list[tuple[str, str] | None] = [None] * (ROWS - 1) + [("truncated", "ends early")]
    rows = ShardRows(Shard(index, inputs, f"{index:064d}"), metas, vectors, errors)
    return shard_table(rows, record, {})


def _set(table: pa.Table, name: str, values: pa.Array | list[Any]) -> pa.Table:
    at = table.schema.get_field_index(name)
    column = values if isinstance(values, pa.Array) else pa.array(values)
    field = pa.field(name, column.type)
    return table.set_column(at, field, column).replace_schema_metadata(table.schema.metadata)


def _row(table: pa.Table, name: str, value: Any) -> pa.Table:
    """``table`` with the value of ``name`` in ``DAMAGED_ROW`` replaced (same type)."""
    column = table.column(name).combine_chunks()
    values = column.to_pylist()
    values[DAMAGED_ROW] = value
    return _set(table, name, pa.array(values, column.type))


def _missing_sha256(t: pa.Table) -> pa.Table:
    return t.drop_columns(["sha256"]).replace_schema_metadata(t.schema.metadata)


def _string_vectors(t: pa.Table) -> pa.Table:
    return _set(
        t, "vector", [None if v is None else str(v) for v in t.column("vector").to_pylist()]
    )


def _null_vector(t: pa.Table) -> pa.Table:
    return _row(t, "vector", None)


def _null_sha256(t: pa.Table) -> pa.Table:
    return _row(t, "sha256", None)


def _nan_vector(t: pa.Table) -> pa.Table:
    vector = t.column("vector").to_pylist()[DAMAGED_ROW]
    return _row(t, "vector", [math.nan, *vector[1:]])


def _zero_vector(t: pa.Table) -> pa.Table:
    vector = t.column("vector").to_pylist()[DAMAGED_ROW]
    return _row(t, "vector", [0.0] * len(vector))


def _null_source(t: pa.Table) -> pa.Table:
    return _row(t, "source", None)


def _bad_sha256(t: pa.Table) -> pa.Table:
    return _row(t, "sha256", "None")


def _unknown_error_code(t: pa.Table) -> pa.Table:
    values = t.column("error_code").to_pylist()
    values[ROWS - 1] = "exploded"
    return _set(t, "error_code", pa.array(values, pa.string()))


def _wrong_dimension(t: pa.Table) -> pa.Table:
    vectors = [None if v is None else v[:-1] for v in t.column("vector").to_pylist()]
    dim = t.schema.field("vector").type.list_size - 1
    return _set(t, "vector", pa.array(vectors, pa.list_(pa.float32(), dim)))


# (damage, the row named or None for a schema error, the column named, words of the reason)
CASES: list[tuple[Callable[[pa.Table], pa.Table], int | None, str, str]] = [
    (_missing_sha256, None, "sha256", "missing"),
    (_string_vectors, None, "vector", "type"),
    (_wrong_dimension, None, "vector", "type"),
    (_null_vector, DAMAGED_ROW, "vector", "null"),
    (_null_sha256, DAMAGED_ROW, "sha256", "null"),
    (_bad_sha256, DAMAGED_ROW, "sha256", "hex"),
    (_nan_vector, DAMAGED_ROW, "vector", "NaN"),
    (_zero_vector, DAMAGED_ROW, "vector", "zero norm"),
    (_null_source, DAMAGED_ROW, "source", "null"),
    (_unknown_error_code, ROWS - 1, "error_code", "unknown"),
]
IDS = [c[0].__name__.lstrip("_") for c in CASES]


def _write(embeddings: Any, folder: Path, damage: Callable[[pa.Table], pa.Table]) -> Path:
    """A good shard 0 and a damaged shard 1 in ``folder``; returns the damaged file."""
    folder.mkdir()
    pq.write_table(_table(embeddings, 0), folder / "shard-000000.parquet")
    damaged = folder / "shard-000001.parquet"
    pq.write_table(damage(_table(embeddings, 1)), damaged)
    return damaged


def _pattern(path: Path, row: int | None, column: str, reason: str) -> str:
    where = f"row {row}, " if row is not None else ""
    return rf"{path.name}.*{where}column '{column}'.*{reason}"


@pytest.mark.parametrize(("damage", "row", "column", "reason"), CASES, ids=IDS)
def test_load_shards_refuses_a_damaged_shard_and_writes_nothing_of_it(
    embeddings: Any,
    tmp_path: Path,
    damage: Callable[[pa.Table], pa.Table],
    row: int | None,
    column: str,
    reason: str,
) -> None:
    damaged = _write(embeddings, tmp_path / "shards", damage)
    store = FAISSImageStore(embeddings, tmp_path / "index")
    # batch_size 1: the damaged row comes after good rows of the same shard, and they
    # must not be written either
    with pytest.raises(StoreError, match=_pattern(damaged, row, column, reason)) as caught:
        load_shards(store, tmp_path / "shards", batch_size=1)
    assert "model produced" not in str(caught.value)
    assert len(store) == ROWS - 1 if row is not None else len(store) == 0
    # schema damage is found before anything is written; row damage after shard 0 (3 rows)


@pytest.mark.parametrize(("damage", "row", "column", "reason"), CASES, ids=IDS)
def test_imgemb_load_exits_5_naming_file_row_and_column(
    embeddings: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[pa.Table], pa.Table],
    row: int | None,
    column: str,
    reason: str,
) -> None:
    damaged = _write(embeddings, tmp_path / "shards", damage)
    store = f"faiss:{tmp_path / 'index'}"
    code = main(
        ["load", str(tmp_path / "shards"), "--store", store, "--quiet", "--batch-size", "1"]
    )
    err = capsys.readouterr().err
    assert code == 5, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert re.search(_pattern(damaged, row, column, reason), err), err


@pytest.mark.parametrize("keep", [load.KEEP_CHECKED_BYTES, 0])
def test_good_shards_still_load(
    embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: int
) -> None:
    """Checked rows are kept for the write, or (a shard over the budget) read again."""
    monkeypatch.setattr(load, "KEEP_CHECKED_BYTES", keep)
    folder = tmp_path / "shards"
    folder.mkdir()
    for index in (0, 1):
        pq.write_table(_table(embeddings, index), folder / f"shard-00000{index}.parquet")
    store = FAISSImageStore(embeddings, tmp_path / "index")
    report = load_shards(store, folder, batch_size=3)
    assert (len(report.result.added), len(report.result.failures), len(store)) == (6, 2, 6)
    assert [e.code for e in report.result.failures] == ["truncated"] * 2
    assert report.rows == 2 * ROWS


def test_a_shard_too_large_to_keep_is_checked_before_it_is_read_again(
    embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load, "KEEP_CHECKED_BYTES", 0)
    damaged = _write(embeddings, tmp_path / "shards", _nan_vector)
    store = FAISSImageStore(embeddings, tmp_path / "index")
    with pytest.raises(StoreError, match=_pattern(damaged, DAMAGED_ROW, "vector", "NaN")):
        load_shards(store, tmp_path / "shards", batch_size=1)
    assert len(store) == ROWS - 1
