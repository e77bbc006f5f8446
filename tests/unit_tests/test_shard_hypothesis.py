"""Generated damage to Parquet shards (issue 24): ``load_shards`` and ``imgemb load`` either
load every row of a valid shard or refuse the shard with a ``StoreError`` naming the file
and, for a bad value, the row and the column; nothing of a refused shard is written.

Each example starts from a valid shard as ``embed-dataset`` writes it (``shard_table`` of a
tiny saved model: a few rows, some of them recorded failures) and mutates its schema (a
column dropped, renamed, repeated, of another type, vectors of another length; an extra
column) and its values (nulls, empty strings, NaN/inf/huge/tiny vector values, zero
vectors, duplicate ids, sha256 and sources, sha256 of another shard, unknown error codes,
odd image metadata). The file read back is judged by :func:`_expected`, an oracle written
from the shard format's documented rules, independently of ``check_rows``.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.errors import IMAGE_ERROR_CODES, StoreError
from langchain_image_embeddings.scale.load import load_shards
from langchain_image_embeddings.scale.plan import Shard
from langchain_image_embeddings.scale.shards import ShardRows, shard_schema, shard_table
from langchain_image_embeddings.vectorstores import FAISSImageStore
from langchain_image_embeddings.vectorstores._records import (
    MIN_NORM,
    content_id,
    model_record,
    record_paths,
)
from tests.scale_tests.corpus import save_tiny_model

GOOD_ROWS = 3  # shard 0: always valid, loaded before the generated shard 1
DAMAGED_NAME = "shard-000001.parquet"
CODES = sorted(IMAGE_ERROR_CODES)
STRING_COLUMNS = ("id", "source", "sha256", "format", "error_code", "error")
COLUMNS = tuple(shard_schema(1).names)
SHA256 = re.compile(r"[0-9a-f]{64}")
FLOAT32_MAX = float(np.finfo(np.float32).max)

COMMON = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass
class Setup:
    """What every example shares: the model, its record and a valid shard 0."""

    spec: str
    embeddings: Any
    record: dict[str, Any]
    root: Path
    good: Path  # the valid shard 0
    good_ids: frozenset[str]
    good_failures: int
    dim: int = field(init=False)

    def __post_init__(self) -> None:
        self.dim = int(self.record["dim"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    from langchain_image_embeddings import ImageEmbeddings

    spec = save_tiny_model(tmp_path_factory.mktemp("shard-hypothesis-model"))
    embeddings = ImageEmbeddings(spec, device="cpu")
    record = model_record(embeddings)
    root = tmp_path_factory.mktemp("shard-hypothesis")
    failed = [False] * (GOOD_ROWS - 1) + [True]
    table = _valid_table(record, 0, failed, seed=0)
    good = root / "shard-000000.parquet"
    pq.write_table(table, good)
    data = table.to_pydict()
    ids = frozenset(
        content_id(s, str(record["model"]))
        for s, c in zip(data["sha256"], data["error_code"], strict=True)
        if c is None
    )
    yield Setup(spec, embeddings, record, root, good, ids, sum(failed))


def _valid_table(record: dict[str, Any], index: int, failed: list[bool], seed: int) -> pa.Table:
    """A shard as ``embed-dataset`` writes it (``shard_table``): unit vectors, the failed
    rows with their source and a known error code alone."""
    dim = int(record["dim"])
    n = len(failed)
    inputs = tuple(f"/photos/{index}/{row}.jpg" for row in range(n))
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metas: list[dict[str, Any] | None] = []
    errors: list[tuple[str, str] | None] = []
    for row, path in enumerate(inputs):
        if failed[row]:
            metas.append({"source": path})
            errors.append((CODES[(seed + row) % len(CODES)], "could not read it"))
            continue
        sha = hashlib.sha256(f"{seed}:{path}".encode()).hexdigest()
        metas.append(
            {
                "source": path,
                "sha256": sha,
                "width": 64,
                "height": 48,
                "format": "JPEG",
                "bytes": 1000 + row,
                "mtime": 1.0 + row,
            }
        )
        errors.append(None)
    rows = ShardRows(Shard(index, inputs, f"{index:064d}"), metas, vectors, errors)
    return shard_table(rows, record, {})


# --- mutations ----------------------------------------------------------------------------


def _replace(table: pa.Table, name: str, column: pa.Array | pa.ChunkedArray) -> pa.Table:
    at = table.schema.get_field_index(name)
    out = table.set_column(at, pa.field(name, column.type), column)
    return out.replace_schema_metadata(table.schema.metadata)


def _cell(table: pa.Table, name: str, row: int, value: Any) -> pa.Table:
    """``table`` with one value of column ``name`` replaced (same type)."""
    column = table.column(name).combine_chunks()
    values = column.to_pylist()
    values[row] = value
    return _replace(table, name, pa.array(values, column.type))


OTHER_TYPES = [
    pa.string(),
    pa.large_string(),
    pa.binary(),
    pa.int32(),
    pa.int64(),
    pa.float32(),
    pa.float64(),
    pa.bool_(),
]


def _retyped(column: pa.ChunkedArray, to: pa.DataType) -> pa.Array:
    """``column`` cast to ``to`` where Arrow can, else nulls of that type."""
    try:
        return column.combine_chunks().cast(to)
    except (pa.ArrowException, ValueError):
        return pa.nulls(len(column), to)


@st.composite
def schema_damage(draw: st.DrawFn, table: pa.Table, dim: int) -> pa.Table:
    """One change to the columns of ``table``."""
    meta = table.schema.metadata
    name = draw(st.sampled_from(table.schema.names))
    kind = draw(st.sampled_from(["drop", "rename", "extra", "repeat", "retype", "vector_length"]))
    if kind == "drop":
        return table.drop_columns([name]).replace_schema_metadata(meta)
    if kind == "rename":
        names = [f"{n}_" if n == name else n for n in table.schema.names]
        return table.rename_columns(names).replace_schema_metadata(meta)
    if kind in ("extra", "repeat"):
        extra = name if kind == "repeat" else draw(st.sampled_from(["extra", "notes", "Id"]))
        to = draw(st.sampled_from(OTHER_TYPES))
        return table.append_column(pa.field(extra, to), pa.nulls(table.num_rows, to))
    if kind == "retype":
        to = draw(st.sampled_from([*OTHER_TYPES, pa.list_(pa.float32())]))
        return _replace(table, name, _retyped(table.column(name), to))
    # the vectors: another length, a variable-length list, float64 or float16 items
    values = table.column("vector").to_pylist()
    how = draw(st.sampled_from(["shorter", "longer", "variable", "float64", "float16"]))
    if how == "shorter":
        arr = pa.array([v and v[:-1] for v in values], pa.list_(pa.float32(), dim - 1))
    elif how == "longer":
        arr = pa.array([v and [*v, 0.0] for v in values], pa.list_(pa.float32(), dim + 1))
    elif how == "variable":
        arr = pa.array(values, pa.list_(pa.float32()))
    else:
        to = pa.float64() if how == "float64" else pa.float16()
        items = [v and [np.float16(x) if how == "float16" else x for x in v] for v in values]
        arr = pa.array(items, pa.list_(to, dim))
    return _replace(table, "vector", arr)


ODD_VECTOR_VALUES = [
    math.nan,
    math.inf,
    -math.inf,
    None,
    0.0,
    FLOAT32_MAX,
    -FLOAT32_MAX,
    1e30,
    1e-30,
    -1.0,
]
ODD_SHA = ["", "None", "A" * 64, "g" * 64, "0" * 63, "0" * 65, " " + "0" * 63]


@st.composite
def value_damage(draw: st.DrawFn, table: pa.Table, other: pa.Table) -> pa.Table:
    """One change to the values of ``table`` (``other``: the valid shard 0)."""
    n = table.num_rows
    embedded = [r for r, c in enumerate(table.column("error_code").to_pylist()) if c is None]
    if embedded and draw(st.integers(0, 3)) != 0:  # mostly the rows checked hardest
        row = draw(st.sampled_from(embedded))
    else:
        row = draw(st.integers(0, n - 1))
    kind = draw(
        st.sampled_from(
            [
                "null",
                "empty",
                "vector_value",
                "vector_scale",
                "duplicate",
                "from_other_shard",
                "error_code",
                "sha256",
                "metadata",
            ]
        )
    )
    if kind == "null":
        return _cell(table, draw(st.sampled_from(COLUMNS)), row, None)
    if kind == "empty":
        return _cell(table, draw(st.sampled_from(STRING_COLUMNS)), row, "")
    vectors = table.column("vector").to_pylist()
    vector = vectors[row] or vectors[0] or [1.0] * table.schema.field("vector").type.list_size
    if kind == "vector_value":
        at = draw(st.integers(0, len(vector) - 1))
        value = draw(st.sampled_from(ODD_VECTOR_VALUES))
        changed = list(vector)
        if draw(st.booleans()):
            changed = [value] * len(vector)  # every value
        else:
            changed[at] = value
        return _cell(table, "vector", row, changed)
    if kind == "vector_scale":
        scale = draw(st.sampled_from([0.0, 1e-9, 1e-5, 1e3, 1e15, 1e25]))  # off the edges
        return _cell(table, "vector", row, [x * scale for x in vector])
    if kind in ("duplicate", "from_other_shard"):
        source = table if kind == "duplicate" else other
        from_row = draw(st.integers(0, source.num_rows - 1))
        name = draw(st.sampled_from(["id", "sha256", "source", "vector", "error_code"]))
        return _cell(table, name, row, source.column(name)[from_row].as_py())
    if kind == "error_code":
        code = draw(st.sampled_from([*CODES, None, "exploded", "", "Truncated", " truncated"]))
        return _cell(table, "error_code", row, code)
    if kind == "sha256":
        return _cell(table, "sha256", row, draw(st.sampled_from(ODD_SHA)))
    name = draw(st.sampled_from(["width", "height", "bytes", "mtime", "format"]))
    odd: dict[str, list[Any]] = {
        "width": [0, -1, 2**31 - 1],
        "height": [0, -7, 2**31 - 1],
        "bytes": [0, -1, 2**63 - 1],
        "mtime": [math.nan, math.inf, -1.0, 0.0],
        "format": ["", "NOT-AN-IMAGE", "é" * 40],
    }
    return _cell(table, name, row, draw(st.sampled_from(odd[name])))


@dataclass
class Case:
    """A generated shard 1 and how to load it."""

    table: pa.Table
    batch_size: int
    changes: list[str]


@st.composite
def shards(draw: st.DrawFn, setup: Setup) -> Case:
    """A valid shard 1 of 1 to 5 rows, then up to three changes to its values and maybe
    one to its schema (no change too: the valid shard must load)."""
    n = draw(st.integers(1, 5))
    failed = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    table = _valid_table(setup.record, 1, failed, seed=draw(st.integers(1, 2**16)))
    other = pq.read_table(setup.good)
    changes: list[str] = []
    for _ in range(draw(st.sampled_from([1, 2, 3, 0]))):  # values first: columns still there
        table = draw(value_damage(table, other))
        changes.append("value")
    if draw(st.integers(0, 3)) == 0:  # a quarter of the shards get a schema change too
        table = draw(schema_damage(table, setup.dim))
        changes.append("schema")
    return Case(table, draw(st.sampled_from([1, 2, 4096])), changes)


# --- the oracle ---------------------------------------------------------------------------


@dataclass
class Expected:
    """What loading a shard file must do: refuse it for a column (schema), refuse it for
    one of some (row, column) cells, or load it."""

    schema_columns: set[str] = field(default_factory=set)
    bad_cells: set[tuple[int, str]] = field(default_factory=set)

    @property
    def refused(self) -> bool:
        return bool(self.schema_columns or self.bad_cells)


def _same_type(found: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_fixed_size_list(expected):
        return bool(
            pa.types.is_fixed_size_list(found)
            and found.list_size == expected.list_size
            and found.value_type == expected.value_type
        )
    return bool(found == expected)


def _expected(path: Path, dim: int) -> Expected:
    """The shard format's rules, applied to the file as written."""
    out = Expected()
    schema = pq.read_schema(path)
    for want in shard_schema(dim):
        at = schema.get_all_field_indices(want.name)
        if len(at) != 1 or not _same_type(schema.field(at[0]).type, want.type):
            out.schema_columns.add(want.name)
    if out.schema_columns:
        return out
    data = pq.read_table(path).to_pydict()
    for row in range(len(data["source"])):
        code = data["error_code"][row]
        if data["source"][row] is None:
            out.bad_cells.add((row, "source"))
        if code is not None:
            if code not in IMAGE_ERROR_CODES:
                out.bad_cells.add((row, "error_code"))
            continue
        sha = data["sha256"][row]
        if sha is None or not SHA256.fullmatch(sha):
            out.bad_cells.add((row, "sha256"))
        vector = data["vector"][row]
        if vector is None or any(x is None or not math.isfinite(x) for x in vector):
            out.bad_cells.add((row, "vector"))
        elif not MIN_NORM**2 < sum(float(x) ** 2 for x in vector) <= FLOAT32_MAX:
            out.bad_cells.add((row, "vector"))  # zero, or a norm float32 cannot hold
    return out


def _check_refusal(message: str, damaged: Path, expected: Expected) -> None:
    assert damaged.name in message, message
    assert "model produced" not in message, message  # blames the shard, not a model
    if expected.schema_columns:
        named = re.search(r": column '([^']+)'", message)
        assert named, message
        assert named.group(1) in expected.schema_columns, (message, expected)
        return
    named = re.search(r": row (\d+), column '([^']+)'", message)
    assert named, message
    assert (int(named.group(1)), named.group(2)) in expected.bad_cells, (message, expected)


# --- the properties -----------------------------------------------------------------------


def _folder(setup: Setup) -> tuple[Path, Path]:
    """A fresh folder holding the valid shard 0, and a fresh store folder."""
    base = Path(tempfile.mkdtemp(dir=setup.root))
    shards_dir = base / "shards"
    shards_dir.mkdir()
    shutil.copyfile(setup.good, shards_dir / setup.good.name)
    return shards_dir, base / "index"


def _sources(store: FAISSImageStore) -> dict[str, set[str]]:
    return {i: set(record_paths(meta)) for i, meta in store.records().items()}


@pytest.fixture(scope="module")
def shard0_sources(setup: Setup) -> dict[str, set[str]]:
    """The records of a store holding shard 0 alone (what a refused shard 1 leaves)."""
    shards_dir, index = _folder(setup)
    store = FAISSImageStore(setup.embeddings, index)
    load_shards(store, shards_dir)
    return _sources(store)


def _expected_sources(setup: Setup, damaged: Path) -> dict[str, set[str]]:
    """Per content id, every path of the rows recorded as embedded, shard 0 and 1."""
    model_id = str(setup.record["model"])
    out: dict[str, set[str]] = {}
    for path in (setup.good, damaged):
        data = pq.read_table(path).to_pydict()
        for source, sha, code in zip(
            data["source"], data["sha256"], data["error_code"], strict=True
        ):
            if code is None:
                out.setdefault(content_id(sha, model_id), set()).add(source)
    return out


@settings(COMMON, max_examples=100)
@given(data=st.data())
def test_load_shards_loads_a_valid_shard_or_refuses_it_whole(
    setup: Setup, shard0_sources: dict[str, set[str]], data: st.DataObject
) -> None:
    case = data.draw(shards(setup))
    shards_dir, index = _folder(setup)
    damaged = shards_dir / DAMAGED_NAME
    pq.write_table(case.table, damaged)
    expected = _expected(damaged, setup.dim)
    store = FAISSImageStore(setup.embeddings, index)
    try:
        report = load_shards(store, shards_dir, batch_size=case.batch_size)
    except StoreError as exc:
        event("refused: columns" if expected.schema_columns else "refused: a row")
        assert expected.refused, f"a valid shard was refused: {exc}"
        _check_refusal(str(exc), damaged, expected)
        # footers (columns) are all read first: nothing at all; a bad row: shard 0 alone
        assert _sources(store) == ({} if expected.schema_columns else shard0_sources)
        return
    event(f"loaded after {len(case.changes)} change(s)")
    assert not expected.refused, f"a damaged shard was loaded: {expected}"
    wanted = _expected_sources(setup, damaged)
    assert _sources(store) == wanted
    assert len(store) == len(wanted)
    failed = sum(c is not None for c in case.table.column("error_code").to_pylist())
    assert len(report.result.failures) == setup.good_failures + failed
    assert report.rows == GOOD_ROWS + case.table.num_rows
    vectors = store.get_vectors(sorted(wanted))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


@settings(COMMON, max_examples=8)
@given(data=st.data())
def test_imgemb_load_exits_0_or_5(
    setup: Setup, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    case = data.draw(shards(setup))
    shards_dir, index = _folder(setup)
    damaged = shards_dir / DAMAGED_NAME
    pq.write_table(case.table, damaged)
    expected = _expected(damaged, setup.dim)
    capsys.readouterr()
    argv = ["load", str(shards_dir), "--store", f"faiss:{index}", "--quiet"]
    code = main([*argv, "--batch-size", str(case.batch_size)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    event(f"exit {code}")
    if not expected.refused:
        assert code == 0, err
        return
    assert code == 5, err
    assert err.startswith("error: "), err
    _check_refusal(err, damaged, expected)


# --- regressions found by the generated cases ---------------------------------------------


def test_regression_a_vector_whose_norm_overflows_float32_is_refused(setup: Setup) -> None:
    """One value of ``float32`` max: finite, so it passed the NaN and zero-norm checks, but
    its norm is infinite in float32 and the store kept it as it was, not scaled to unit
    length (a record of norm ``inf``). Now the row is refused and nothing of it written."""
    table = _valid_table(setup.record, 1, [False], seed=1)
    vector = table.column("vector")[0].as_py()
    table = _cell(table, "vector", 0, [FLOAT32_MAX, *vector[1:]])
    shards_dir, index = _folder(setup)
    damaged = shards_dir / DAMAGED_NAME
    pq.write_table(table, damaged)
    store = FAISSImageStore(setup.embeddings, index)
    pattern = rf"{DAMAGED_NAME}: row 0, column 'vector' is too large"
    with pytest.raises(StoreError, match=pattern):
        load_shards(store, shards_dir, batch_size=1)
    assert set(store.records()) == setup.good_ids
