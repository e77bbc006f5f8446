"""Issue 26, IVF at any size and recall targets kept: training sized by the list count,
plans that cannot train refused before any load, an HNSW coarse quantizer for large list
counts, and on hard data a store that reaches its target on held-out queries or refuses."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores import FAISSImageStore, store_info
from langchain_image_embeddings.vectorstores.faiss import _index as ann
from tests.unit_tests import store_crash_writer as writer

DIM = writer.DIM  # 64
HARD_DIM = 32  # the hard-data tests: small enough to build four plans in seconds


class _Encoder32:
    def fingerprint(self) -> dict[str, object]:
        return {"spec": writer.MODEL_ID, "dim": HARD_DIM, "weights": "none"}


class Vectors32(writer.PrecomputedEmbeddings):
    dim = HARD_DIM
    encoder = _Encoder32()  # type: ignore[assignment]


def hard(n: int, dim: int, clusters: int, seed: int, queries: int = 0) -> np.ndarray:
    """Zipf-sized clusters (weight 1/rank^1.1) with anisotropic noise (per-dimension
    standard deviation 0.25 / sqrt(j)), each cluster's spread scaled by U(0.5, 1.5), all
    rotated by a random orthogonal matrix; the last ``queries`` rows are held-out points of
    the same process perturbed once more (N(0, 0.02)). As ``benchmarks/ann.py --data hard``.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, clusters + 1) ** 1.1
    label = rng.choice(clusters, n + queries, p=weights / weights.sum())
    scales = 0.25 * np.arange(1, dim + 1, dtype=np.float32) ** -0.5
    spread = rng.uniform(0.5, 1.5, clusters).astype(np.float32)
    noise = rng.standard_normal((n + queries, dim)).astype(np.float32)
    x = centres[label] + noise * scales * spread[label, None]
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    x = (x @ rotation).astype(np.float32)
    x[n:] += 0.02 * rng.standard_normal((queries, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled(vectors: np.ndarray, path: Path | None = None, **kwargs: object) -> FAISSImageStore:
    store = FAISSImageStore(Vectors32(), path, **kwargs)  # type: ignore[arg-type]
    ids = [f"v{i}" for i in range(len(vectors))]
    store.upsert_vectors(ids, vectors, [Document(page_content=i) for i in ids])
    return store


def test_training_is_sized_by_the_list_count_with_a_floor_and_a_cap() -> None:
    plan = ann.factory_string("ivf-pq", 200_000_000, 512)
    assert "IVF32768_HNSW32," in plan  # 4 sqrt(n) lists, an HNSW coarse quantizer
    assert ann.training_points(plan, 10**9) == ann.MAX_TRAIN_POINTS  # 61 a list, capped
    assert ann.training_points("IVF1024,PQ8", 10**9) == 100 * 1024  # ~100 a list
    assert ann.training_points("IVF65536,PQ8", 10**9) == 39 * 65536  # the floor beats the cap
    assert ann.training_points("IVF1024,PQ8", 50_000) == 50_000
    for n in (1_000, 10_000, 1_000_000, 200_000_000, 10**9):
        lists = ann.ivf_lists(ann.factory_string("ivf-pq", n, 64))
        assert lists is not None and n >= 39 * lists  # every planned size can train
    with pytest.raises(ValueError, match=r"65,536 inverted lists.*2,555,904 training.*1,000,000"):
        ann.check_trainable("IVF65536,PQ8", 1_000_000)


def test_a_plan_that_cannot_train_is_refused_at_creation_and_before_a_load(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match=r"65,536 inverted lists.*2,555,904.*1,000,000"):
        FAISSImageStore(
            writer.PrecomputedEmbeddings(),  # type: ignore[arg-type]
            index="IVF65536,PQ16",
            expected_rows=1_000_000,
        )
    store = FAISSImageStore(writer.PrecomputedEmbeddings(), index="IVF4096,PQ16")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=r"4,096 inverted lists.*159,744 training.*5,000"):
        store.backend.check_load(5_000)
    store.backend.check_load(200_000)  # enough rows: no refusal
    assert len(store) == 0


def test_load_shards_refuses_an_untrainable_plan_before_writing_anything(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from langchain_image_embeddings.scale.load import load_shards

    store = FAISSImageStore(writer.PrecomputedEmbeddings(), tmp_path / "s", index="IVF4096,PQ16")  # type: ignore[arg-type]
    shard = tmp_path / "shards"
    shard.mkdir()
    _write_shard(shard / "shard-000000.parquet", hard(2_000, DIM, 50, seed=5))
    with pytest.raises(StoreError, match=r"4,096 inverted lists.*159,744.*2,000"):
        load_shards(store, shard)
    assert len(store) == 0 and not (tmp_path / "s" / "manifest.json").exists()


def _write_shard(path: Path, vectors: np.ndarray) -> None:
    import hashlib

    import pyarrow.parquet as pq

    from langchain_image_embeddings.scale.plan import Shard
    from langchain_image_embeddings.scale.shards import ShardRows, shard_table
    from langchain_image_embeddings.vectorstores._records import model_record

    inputs = tuple(f"img{n}.png" for n in range(len(vectors)))
    metas = [{"source": s, "sha256": hashlib.sha256(s.encode()).hexdigest()} for s in inputs]
    rows = ShardRows(Shard(0, inputs, "0" * 64), metas, vectors, [None] * len(inputs))
    record = {**model_record(writer.PrecomputedEmbeddings()), "dim": DIM}  # type: ignore[arg-type]
    table = shard_table(rows, record, {})
    pq.write_table(table, path)


def shallow_rescoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rescore 2 candidates a result: at a few thousand rows a deep refine rescues any
    code, so the codes' own quality (what fails at 100k+ rows) decides recall here."""
    monkeypatch.setitem(ann._REFINE_GRID, "ivf", (2,))


def test_hard_data_the_store_escalates_its_plan_until_the_target_holds_held_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shallow_rescoring(monkeypatch)
    data = hard(3_000, HARD_DIM, 30, seed=1, queries=200)
    vectors, queries = data[:3_000], data[3_000:]
    store = filled(vectors, tmp_path / "s", index="ivf-pq", recall_target=0.95)
    store.save()
    info = store.index_info
    tried = info["plans_tried"]
    assert tried[0]["factory"] == ann.ivf_pq_plans(3_000, HARD_DIM)[0]
    assert tried[0]["recall"] < 0.95 and len(tried) >= 2  # the compact plan stops short
    assert info["reached"] and info["recall"] >= 0.95 and info["factory"] == tried[-1]["factory"]
    assert info["recall_queries"].startswith("held-out")
    front = info["front"]
    assert front and all(
        a["ms"] <= b["ms"] and a["recall"] < b["recall"] for a, b in itertools.pairwise(front)
    )
    # the recorded point holds on queries the store never saw
    truth = ann.exact_topk(vectors, queries, 10)
    hits = 0
    for q, true in zip(queries, truth, strict=True):
        found = store.similarity_search_with_score_by_vector(q.tolist(), 10)
        hits += len({int(str(d.id)[1:]) for d, _ in found} & set(true.tolist()))
    assert hits / truth.size >= 0.93
    shown = store_info(f"faiss:{tmp_path / 's'}")
    assert shown["recall_at_10"] == info["recall"] and shown["recall_reached"] is True
    assert shown["plans_tried"][0].startswith(tried[0]["factory"])


def test_hard_data_the_store_refuses_when_no_plan_within_budget_reaches_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shallow_rescoring(monkeypatch)
    vectors = hard(3_000, HARD_DIM, 30, seed=1)
    store = filled(vectors, tmp_path / "s", index="ivf-pq", recall_target=0.99, memory_budget=1)
    with pytest.raises(StoreError, match=r"no index plan reaches recall@10 0\.99.*PQ8x4fs: 0\.\d+"):
        store.save()
    assert store.backend._ann is None  # exact search until the plan changes
    assert not (tmp_path / "s" / "manifest.json").exists()
    store.recall_target = 0.5  # a target the compact plan reaches: saved, and recorded
    store.save()
    assert store_info(f"faiss:{tmp_path / 's'}")["recall_reached"] is True


@pytest.mark.slow
def test_an_ivf_pq_plan_for_200m_rows_trains_and_builds_on_a_2m_sample() -> None:
    faiss = pytest.importorskip("faiss")
    dim, n = 16, 2_000_000
    plan = ann.factory_string("ivf-pq", 200_000_000, dim)
    lists = ann.ivf_lists(plan)
    assert lists == 32_768 and "_HNSW32" in plan  # as for 200M rows
    assert ann.training_points(plan, n) == n  # 2M training vectors: 61 a list
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4096, dim)).astype(np.float32)
    x = centres[rng.integers(0, 4096, n)] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = ann.build(plan, x, kmeans_iterations=2)
    ivf = faiss.extract_index_ivf(index)
    assert index.ntotal == n and ivf.nlist == lists and ivf.quantizer.ntotal == lists
    sizes = np.asarray([ivf.get_list_size(i) for i in range(lists)])
    # most lists used, not collapsed (4,096 data clusters: 80 % of 32,768 lists were non-empty)
    assert sizes.sum() == n and (sizes > 0).mean() > 0.5
    found = ann.search_rescored(index, x, x[:50], 10, 10, {"nprobe": 16})
    # 16-bit codes (4 x 4 bits), 16 of 32,768 lists: 34 of 50 found themselves first when
    # measured; a broken build (wrong lists, untrained codes) finds almost none
    assert sum(int(rows[0] == i) for i, (rows, _) in enumerate(found)) >= 25


@pytest.mark.slow
def test_hard_data_hnsw_holds_its_target_on_queries_it_never_saw(tmp_path: Path) -> None:
    # Tuned on held-out stored rows, HNSW recorded 0.99 here and gave 0.935 on new perturbed
    # queries (issue 26: 0.951 recorded, 0.844 measured at 100,000 x 256): a graph search
    # loses recall off the stored rows, so it tunes on rows moved off them.
    dim = 128
    data = hard(30_000, dim, 300, seed=1, queries=200)
    vectors, queries = data[:30_000], data[30_000:]
    index = ann.build("HNSW32", vectors, seed=0)
    tuned = ann.tune(index, vectors, target=0.95)
    assert tuned["reached"] and "moved" in tuned["recall_queries"]
    truth = ann.exact_topk(vectors, queries, 10)
    found = ann.search_rescored(index, vectors, queries, 10, tuned["refine"], tuned["params"])
    hits = sum(
        len(set(f.tolist()) & set(t.tolist())) for (f, _), t in zip(found, truth, strict=True)
    )
    assert hits / truth.size >= 0.95
