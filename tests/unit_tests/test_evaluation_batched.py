"""``evaluate`` searches its queries in batches on a store that has
``similarity_search_by_vectors``, with the same rankings as one search per query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_image_embeddings.evaluation import _run, evaluate
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.test_evaluation import FixedEmbeddings


def _count(monkeypatch: pytest.MonkeyPatch, store: Any, name: str) -> list[int]:
    calls = [0]
    original = getattr(store, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(store, name, counted)
    return calls


def test_queries_are_searched_in_batches_with_the_per_query_rankings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 70 queries: two batches of SEARCH_BATCH (64), 64 + 6
    lines = ['{"text": "east", "relevant": ["b"]}', '{"text": "north", "relevant": ["c", "a"]}']
    lines += ['{"text": "east", "relevant": "d"}'] * 68
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stock = InMemoryVectorStore(FixedEmbeddings())  # no batched search: one per query
    ours = FAISSImageStore(FixedEmbeddings())
    for store in (stock, ours):
        store.add_texts(["a", "b", "c", "d"], ids=["a", "b", "c", "d"])
    batched = _count(monkeypatch, ours, "similarity_search_by_vectors")
    single = _count(monkeypatch, ours, "similarity_search_by_vector")
    (expected,) = evaluate(store=stock, queries=queries).rows
    (row,) = evaluate(store=ours, queries=queries).rows
    assert row.ranks == expected.ranks == [2, 1] + [4] * 68
    assert row.metrics == pytest.approx(expected.metrics)
    assert (batched[0], single[0]) == (2, 0)  # ceil(70 / 64) calls, none per query
    assert _run.SEARCH_BATCH == 64 and row.queries == 70
