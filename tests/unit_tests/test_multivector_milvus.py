"""The multi-vector page store on Milvus Lite: MaxSim equals brute force, ids, deletes, filters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.vectorstores import MilvusMultiVectorStore, MultiVectorImageStore
from langchain_image_embeddings.vectorstores.multivector import (
    PageStoreBase,
    maxsim,
    relevance_from_maxsim,
)
from langchain_image_embeddings.vectorstores.multivector import _milvus as milvus_module
from tests.unit_tests.test_multivector_store import (
    DIM,
    ColourEmbedder,
    clustered_pages,
    page_image,
    queries_for,
)

pytest.importorskip("pymilvus")

# Importing pymilvus and starting the Milvus Lite process take ~15 s on the busy shared
# machine before the first test: the file is slow as a whole (each test is a few seconds).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lite_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One Milvus Lite file for the module (each test uses its own collections)."""
    return str(tmp_path_factory.mktemp("mv-milvus") / "pages.db")


@pytest.fixture
def store_at(lite_file: str) -> Iterator[Any]:
    """Open stores on the module's Milvus Lite file, each test under a name of its own."""
    name = f"t{uuid.uuid4().hex[:10]}"
    opened: list[MilvusMultiVectorStore] = []

    def open_store(embedder: Any = None, **kwargs: Any) -> MilvusMultiVectorStore:
        store = MilvusMultiVectorStore.connect(lite_file, embedder, collection_name=name, **kwargs)
        opened.append(store)
        return store

    yield open_store
    if opened:
        opened[-1].drop()
    for store in opened:
        store.close()


def brute_force(query: np.ndarray, pages: list[np.ndarray]) -> np.ndarray:
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    return np.array([maxsim(q, p) for p in pages])  # Milvus keeps float32 rows


def fill(store: MilvusMultiVectorStore, pages: list[np.ndarray]) -> None:
    docs = [Document(page_content=f"page{i}.png", metadata={"n": i % 3}) for i in range(len(pages))]
    store.add_vectors([f"p{i}" for i in range(len(pages))], pages, docs)


def test_every_patch_retrieved_equals_brute_force_maxsim(store_at: Any) -> None:
    pages = clustered_pages(24, seed=3)
    store = store_at(token_k=sum(len(p) for p in pages), max_candidates=None)
    fill(store, pages)
    assert isinstance(store, PageStoreBase)
    assert (len(store), store.patch_count) == (24, sum(len(p) for p in pages))
    for query in queries_for(pages, 2, seed=4):
        truth = brute_force(query, pages)
        expected = np.argsort(-truth, kind="stable")[:8]
        hits = store.search_by_tokens(query, k=8)
        assert [d.id for d, _ in hits] == [f"p{i}" for i in expected]
        for (_, score), i in zip(hits, expected, strict=True):
            assert score == pytest.approx(relevance_from_maxsim(truth[i], len(query)), abs=1e-5)


def test_default_candidate_stage_keeps_the_top_pages_like_the_faiss_store(store_at: Any) -> None:
    pages = clustered_pages(100, seed=5)
    store = store_at(token_k=32)
    fill(store, pages)
    faiss = MultiVectorImageStore(None, token_k=32)
    faiss.add_vectors([f"p{i}" for i in range(100)], pages, [Document("x")] * 100)
    found = total = agree = 0
    for query in queries_for(pages, 4, seed=6):
        truth = {f"p{i}" for i in np.argsort(-brute_force(query, pages))[:5]}
        got = [d.id for d, _ in store.search_by_tokens(query, k=5)]
        found += len(truth & set(got))
        total += 5
        agree += got[0] == faiss.search_by_tokens(query, k=1)[0][0].id
    assert found / total >= 0.95
    assert agree == 4


def test_scores_filters_and_bad_pages(store_at: Any) -> None:
    pages = clustered_pages(30)
    store = store_at()
    fill(store, pages)
    hits = store.search_by_tokens(-pages[0][:3], k=30)
    assert hits and all(0.0 <= s <= 1.0 for _, s in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    query = pages[4][:5]
    hits = store.search_by_tokens(query, k=30, filter={"n": 1})
    assert len(hits) == 10 and all(d.metadata["n"] == 1 for d, _ in hits)  # every match scored
    assert all(
        d.metadata["n"] in (0, 2) for d, _ in store.search_by_tokens(query, 3, {"n": [0, 2]})
    )
    hits = store.search_by_tokens(query, k=3, filter=lambda m: m["n"] == 2)
    assert hits and all(d.metadata["n"] == 2 for d, _ in hits)
    with pytest.raises(StoreError, match=r"'bad'.*dimension 5"):
        store.add_vectors(["bad"], [np.ones((3, 5), np.float32)], [Document(page_content="x")])
    with pytest.raises(StoreError, match=r"'zero'.*zero"):
        store.add_vectors(["zero"], [np.zeros((2, DIM), np.float32)], [Document(page_content="")])
    with pytest.raises(StoreError, match=r"<query>.*dimension 3"):
        store.search_by_tokens(np.ones((2, 3), np.float32))
    assert len(store) == 30


def test_delete_re_add_upsert_and_get(store_at: Any) -> None:
    pages = clustered_pages(10)
    store = store_at()
    fill(store, pages)
    store.delete(["p3", "unknown"])
    assert len(store) == 9 and store.patch_count == sum(len(p) for p in pages) - len(pages[3])
    assert [d.id for d in store.get_by_ids(["p3", "p4"])] == ["p4"]
    assert "p3" not in {d.id for d, _ in store.search_by_tokens(pages[3], k=10)}
    store.add_vectors(["p4"], [pages[3]], [Document(page_content="new.png")])  # fewer rows
    assert len(store) == 9
    assert store.patch_count == sum(len(p) for p in pages) - len(pages[4])
    top = store.search_by_tokens(pages[3], k=1)[0][0]
    assert (top.id, top.page_content) == ("p4", "new.png")
    np.testing.assert_allclose(store.page_vectors("p4"), pages[3], atol=1e-6)
    store.delete()
    assert (len(store), store.patch_count) == (0, 0)
    assert store.search_by_tokens(pages[0], k=3) == []


def test_an_interrupted_write_leaves_no_half_page(
    store_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Patches are written before the page record: a failure in between hides the page."""
    pages = clustered_pages(6)
    store = store_at()
    fill(store, pages[:5])
    real = store._upsert

    def fail_on_records(collection: str, rows: Any) -> None:
        if collection == store.pages_collection:
            raise StoreError("simulated crash before the page record")
        real(collection, rows)

    monkeypatch.setattr(store, "_upsert", fail_on_records)
    with pytest.raises(StoreError, match="simulated"):
        store.add_vectors(["p5"], [pages[5]], [Document(page_content="p5.png")])
    monkeypatch.undo()
    assert len(store) == 5 and store.patch_count == sum(len(p) for p in pages)  # orphans
    assert store.get_by_ids(["p5"]) == []
    assert all(d.id != "p5" for d, _ in store.search_by_tokens(pages[5], k=6))
    store.add_vectors(["p5"], [pages[5]], [Document(page_content="p5.png")])
    assert store.search_by_tokens(pages[5], k=1)[0][0].id == "p5"
    assert store.patch_count == sum(len(p) for p in pages)  # the orphans were replaced


def test_images_content_ids_langchain_contract_and_reopen(store_at: Any, tmp_path: Path) -> None:
    embedder = ColourEmbedder()
    store = store_at(embedder)
    red = page_image(tmp_path / "red.png", (255, 0, 0))
    blue = page_image(tmp_path / "blue.png", (0, 0, 255))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = store.add_images([red, str(tmp_path / "broken.png"), blue])
    assert len(result.added) == 2 and [e.index for e in result.failures] == [1]
    again = store.add_images([red])
    assert again.skipped == result.added[:1] and not again.added and embedder.calls == 2
    assert store.similarity_search("red", k=1)[0].metadata["source"].endswith("red.png")
    hits = store.similarity_search_with_relevance_scores("blue", k=2)
    assert hits[0][0].page_content.endswith("blue.png") and 0 <= hits[1][1] <= hits[0][1] <= 1
    assert store.similarity_search_by_image(blue, k=1)[0].id == result.added[1]
    assert store.as_retriever(search_kwargs={"k": 1}).invoke("red")[0].id == result.added[0]
    green = page_image(tmp_path / "green.png", (0, 255, 0))
    ids = store.add_documents([Document(page_content=green, metadata={"book": "b"})])
    assert store.get_by_ids(ids)[0].metadata["book"] == "b"
    store.delete([result.added[0]])
    assert store.add_images([red]).added == result.added[:1]  # the same content id again
    reopened = store_at(ColourEmbedder())
    assert len(reopened) == 3 and reopened.dim == ColourEmbedder.dim
    assert reopened.similarity_search("red", k=1)[0].id == result.added[0]

    class Other(ColourEmbedder):
        model_id = "test:other"

    with pytest.raises(ModelMismatchError, match="test:colours"):
        store_at(Other())
    with pytest.raises(StoreError, match="no Milvus page store"):
        MilvusMultiVectorStore(None, client=reopened.client, collection_name="absent", create=False)


def test_patch_rows_are_read_back_in_batches(
    store_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidates' patches are read with several bounded queries, and a page whose rows
    do not match its record is an error naming it, not a silent partial score."""
    pages = clustered_pages(12, seed=2)
    store = store_at(token_k=500, max_candidates=None)
    fill(store, pages)
    calls: list[int] = []
    real_query = store.client.query

    def counting(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("output_fields") == ["vector"]:
            calls.append(int(kwargs["limit"]))
        return real_query(*args, **kwargs)

    monkeypatch.setattr(milvus_module, "QUERY_ROWS", 64)
    monkeypatch.setattr(store.client, "query", counting)
    truth = np.argsort(-brute_force(pages[7][:4], pages), kind="stable")[:3]
    assert [d.id for d, _ in store.search_by_tokens(pages[7][:4], k=3)] == [f"p{i}" for i in truth]
    assert len(calls) > 1 and all(n <= 64 for n in calls)
    store.client.delete(store.patches_collection, filter='id == "p7#0"')
    with pytest.raises(StoreError, match=r"'p7'.*add the page again"):
        store.search_by_tokens(pages[7][:4], k=3)
