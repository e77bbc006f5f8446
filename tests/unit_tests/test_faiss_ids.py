"""The FAISS store's compact id maps (``RowIds``) against the list + dict they replace."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_image_embeddings.vectorstores.faiss import _ids
from langchain_image_embeddings.vectorstores.faiss._ids import RowIds


class Reference:
    """What the store kept before: row -> id list (``None``: deleted), id -> row dict."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.row: dict[str, int] = {}

    def extend(self, ids: list[str | None]) -> None:
        for rid in ids:
            if rid is not None:
                self.row[rid] = len(self.ids)
            self.ids.append(rid)

    def drop(self, row: int) -> str | None:
        rid = self.ids[row]
        removed = rid is not None and self.row.get(rid) == row
        if removed:
            del self.row[str(rid)]
        self.ids[row] = None
        return rid if removed else None

    def select(self, rows: list[int]) -> Reference:
        kept = Reference()
        kept.extend([self.ids[r] for r in rows])
        return kept


def assert_same(ids: RowIds, ref: Reference, probes: list[str]) -> None:
    assert len(ids) == len(ref.ids)
    assert [ids[r] for r in range(len(ids))] == ref.ids
    assert ids.ids_of(range(len(ids))) == ref.ids
    assert ids.count == len(ref.row)
    assert ids.dead_count == sum(i is None for i in ref.ids)
    assert ids.rows_of(probes) == [ref.row.get(p) for p in probes]
    assert [ids.row(p) for p in probes] == [ref.row.get(p) for p in probes]
    assert [p in ids for p in probes] == [p in ref.row for p in probes]
    live = [r for r, i in enumerate(ref.ids) if i is not None]
    assert ids.live_rows().tolist() == live
    assert ids.dead_rows().tolist() == [r for r, i in enumerate(ref.ids) if i is None]
    assert ids.dead_mask().tolist() == [i is None for i in ref.ids]
    assert [ids.is_live(r) for r in range(len(ids))] == [i is not None for i in ref.ids]


def hex_id(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


#: Small pools so that ids repeat (replaced rows, re-added ids), in every encoding.
POOLS = {
    "hex": [hex_id(n) for n in range(12)],
    "short": ["a", "b", "c", "dd", "", "e e", "ABCD", "ab12"],
    "unicode": ["é", "日本語", "\x00", "a\x00", "\udcff", "🙂x", "x" * 70, "0f"],
}
ALL = [i for pool in POOLS.values() for i in pool]

operation = st.one_of(
    st.tuples(
        st.just("extend"),
        st.lists(st.one_of(st.none(), st.sampled_from(ALL)), max_size=6),
    ),
    st.tuples(
        st.just("extend_pool"),
        st.sampled_from(list(POOLS)),
        st.lists(st.integers(0, 11), max_size=6),
    ),
    st.tuples(st.just("drop"), st.integers(0, 1000)),
    st.tuples(st.just("freeze")),
    st.tuples(
        st.just("add_saved"), st.lists(st.one_of(st.none(), st.sampled_from(ALL)), max_size=6)
    ),
    st.tuples(st.just("select"), st.booleans(), st.integers(0, 1 << 30)),
)


def run(ops: list[tuple[Any, ...]]) -> None:
    ids, ref = RowIds(), Reference()
    for op in ops:
        if op[0] == "extend":
            ids.extend(op[1])
            ref.extend(op[1])
        elif op[0] == "extend_pool":
            pool = POOLS[op[1]]
            ids.extend([pool[k % len(pool)] for k in op[2]])
            ref.extend([pool[k % len(pool)] for k in op[2]])
        elif op[0] == "drop" and ref.ids:
            row = op[1] % len(ref.ids)
            assert ids.drop(row) == ref.drop(row)
        elif op[0] == "freeze":
            ids.freeze()
        elif op[0] == "add_saved":
            ids.add_saved(iter(op[1]))
            ref.extend(op[1])
        elif op[0] == "select":
            rng = np.random.default_rng(op[2])
            if op[1]:  # what the store does: keep the live rows
                rows = [r for r, i in enumerate(ref.ids) if i is not None]
            else:
                rows = sorted(r for r in range(len(ref.ids)) if rng.random() < 0.6)
            ids, ref = ids.select(np.asarray(rows, np.int64)), ref.select(rows)
        assert_same(ids, ref, [*ALL, "missing", "a" * 64])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=25))
def test_row_ids_behave_like_a_list_and_a_dict(ops: list[tuple[Any, ...]]) -> None:
    run(ops)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=25))
def test_row_ids_confirm_every_hash_hit(ops: list[tuple[Any, ...]]) -> None:
    """With a hash that collides all the time, lookups still compare the full ids."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_ids, "_hash", lambda rid: len(rid) % 3)
        run(ops)


def test_blocks_pack_hex_ids_to_their_bytes_and_keep_any_other_id() -> None:
    hex_ids = [hex_id(n) for n in range(1000)]
    ids = RowIds()
    ids.add_saved(hex_ids)
    assert ids.nbytes() < 1000 * (32 + 8 + 4 + 1) + 64  # 32 B an id, not 64
    assert ids.rows_of(hex_ids[::-1]) == list(range(999, -1, -1))
    odd = ["ABCDEF", "ab cd", "é", "a" * 65, "\x00", "\udcff"]
    ids.add_saved(odd)
    assert [ids[1000 + k] for k in range(len(odd))] == odd
    assert ids.rows_of(["ab cd", "abcd", "ABCDEF", "abcdef"]) == [1001, None, 1000, None]


def test_rows_span_several_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ids, "BLOCK_ROWS", 7)
    ids, ref = RowIds(), Reference()
    names = [f"id-{n}" for n in range(50)]
    ids.add_saved(names[:30])
    ref.extend(names[:30])
    ids.extend(names[25:50])
    ref.extend(names[25:50])
    for row in (3, 10, 27, 40):
        assert ids.drop(row) == ref.drop(row)
    ids.freeze()
    assert_same(ids, ref, names)
    rows = [r for r, i in enumerate(ref.ids) if i is not None]
    assert_same(ids.select(np.asarray(rows)), ref.select(rows), names)
