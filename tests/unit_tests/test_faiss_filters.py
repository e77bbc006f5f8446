"""Metadata filters of the FAISS store: the operator vocabulary, and exact filtered search."""

from __future__ import annotations

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_image_embeddings.vectorstores import FAISSImageStore
from langchain_image_embeddings.vectorstores.filters import metadata_matches

META = {"format": "PNG", "width": 640, "sources": ["a.png", "b.png"], "tag": None}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"format": "PNG"}, True),
        ({"format": "JPEG"}, False),
        ({"format": ["JPEG", "PNG"]}, True),
        ({"width": {"$gte": 512, "$lt": 1000}}, True),
        ({"width": {"$gt": 640}}, False),
        ({"format": {"$in": ["PNG"]}, "width": {"$ne": 1}}, True),
        ({"format": {"$nin": ["PNG"]}}, False),
        ({"sources": {"$contains": "b.png"}}, True),
        ({"tag": {"$gt": 3}}, False),  # None compares as no match, not a crash
        ({"$or": [{"format": "JPEG"}, {"width": 640}]}, True),
        ({"$and": [{"format": "PNG"}, {"width": 1}]}, False),
        ({"$not": {"format": "PNG"}}, False),
        (lambda m: m["width"] > 100, True),
    ],
)
def test_operators(flt: object, expected: bool) -> None:
    assert metadata_matches(META, flt) is expected  # type: ignore[arg-type]


def test_unknown_operator_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\$regex"):
        metadata_matches(META, {"format": {"$regex": "P.*"}})


def test_filtered_search_is_exact_and_returns_k_when_k_match() -> None:
    texts = [f"item {i}" for i in range(200)]
    store = FAISSImageStore.from_texts(
        texts, DeterministicFakeEmbedding(size=16), metadatas=[{"n": i} for i in range(200)]
    )
    # 5 matching rows, far outside any small candidate pool: all 5 come back, best first
    hits = store.similarity_search_with_score(
        "item 3", k=5, filter={"n": {"$in": [3, 50, 99, 150, 199]}}, fetch_k=5
    )
    assert len(hits) == 5 and hits[0][0].page_content == "item 3"
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert store.similarity_search("item 3", k=3, filter={"n": -1}) == []
    # deletes keep rows and ids aligned
    ids = store.add_texts(["extra"], ids=["x"])
    store.delete([store.similarity_search("item 0", k=1)[0].id or "", *ids])
    assert len(store) == 199
    assert store.similarity_search("item 150", k=1)[0].page_content == "item 150"
