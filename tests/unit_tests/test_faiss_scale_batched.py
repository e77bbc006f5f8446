"""Issue 26: batched search on every store (one index call for many queries) and Milvus
flushing after bulk writes (searches then use the index, not a scan of growing segments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests import store_crash_writer as writer


def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_batched_search_equals_one_query_at_a_time_in_one_index_call(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_image_embeddings.vectorstores.faiss import _index as ann

    vectors = _vectors(2_000, writer.DIM, 1)
    store = FAISSImageStore(writer.PrecomputedEmbeddings(), index=kind)  # type: ignore[arg-type]
    ids = [f"v{i}" for i in range(len(vectors))]
    store.upsert_vectors(ids, vectors, [Document(page_content=i) for i in ids])
    store.build_index()
    store.delete(["v3", "v7"])
    queries = [*_vectors(20, writer.DIM, 2).tolist(), vectors[3].tolist()]
    one_by_one = [store.similarity_search_with_score_by_vector(q, 5) for q in queries]
    calls: list[int] = []
    real = ann.candidates

    def counted(index: Any, q: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(len(q))
        return real(index, q, *args, **kwargs)

    monkeypatch.setattr(ann, "candidates", counted)
    batched = store.similarity_search_with_score_by_vectors(queries, 5)
    assert [[(d.id, round(s, 5)) for d, s in hits] for hits in batched] == [
        [(d.id, round(s, 5)) for d, s in hits] for hits in one_by_one
    ]
    assert all("v3" not in {d.id for d, _ in hits} for hits in batched)  # deleted stays out
    assert calls == ([len(queries)] if kind == "hnsw" else [])  # one call for all queries
    docs = store.similarity_search_by_vectors(queries[:2], 3, filter={"missing": 1})
    assert docs == [[], []]
    assert store.similarity_search_by_vectors([], 3) == []


def test_milvus_flushes_after_a_bulk_write_and_searches_batched(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_image_embeddings.vectorstores import MilvusImageStore
    from langchain_image_embeddings.vectorstores.milvus import _backend

    store = MilvusImageStore.connect(
        str(tmp_path / "lite.db"), DeterministicFakeEmbedding(size=8), collection_name="bulk"
    )
    flushes: list[str] = []
    real = store.client.flush

    def counted(name: str, **kwargs: Any) -> Any:
        flushes.append(name)
        return real(name, **kwargs)

    store.client.flush = counted
    vectors = _vectors(_backend.FLUSH_BEFORE_SEARCH_ROWS + 10, 8, 3)
    ids = [f"r{i}" for i in range(len(vectors))]
    store.upsert_vectors(ids, vectors, [Document(page_content=i) for i in ids])
    assert store.backend.unflushed_rows == len(ids) and flushes == []
    hits = store.similarity_search_with_score_by_vectors(vectors[:3].tolist(), 1)
    assert flushes == ["bulk"] and store.backend.unflushed_rows == 0  # flushed once, first
    assert [h[0][0].id for h in hits] == ids[:3]
    store.upsert_vectors(["x"], vectors[:1], [Document(page_content="x")])
    store.similarity_search_by_vector(vectors[0].tolist(), 1)
    assert flushes == ["bulk"]  # a small write is scanned, not flushed
    store.persist()  # what load_shards calls at the end of a load
    assert flushes == ["bulk", "bulk"]
    store.close()
