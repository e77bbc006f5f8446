"""Metadata filters of the FAISS store: the operator vocabulary, and exact filtered search."""

from __future__ import annotations

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_image_embeddings.vectorstores import FAISSImageStore
from langchain_image_embeddings.vectorstores._filters import metadata_matches

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


# -- the same filter dicts on Chroma (probe round: multi-key dicts, lists, $not failed there) --
ROWS = [
    {"fmt": "PNG", "w": 10, "tags": ["x", "y"]},
    {"fmt": "JPEG", "w": 20, "tags": ["y"]},
    {"fmt": "PNG", "w": 30},
    {"fmt": "GIF", "w": 40, "flag": True},
    {"fmt": "JPEG", "w": 50},
]
SHARED_FILTERS = [
    {"fmt": "PNG", "w": 30},
    {"fmt": ["PNG", "GIF"]},
    {"w": {"$gt": 10, "$lt": 50}},
    {"fmt": {"$neq": "PNG"}},
    {"$not": {"fmt": "PNG"}},
    {"$not": {"$or": [{"fmt": "GIF"}, {"fmt": {"$in": ["JPEG"]}}]}},
    {"$and": [{"fmt": "PNG"}]},
    {"$or": [{"fmt": "GIF", "flag": True}, {"w": 10}]},
    {"tags": {"$contains": "y"}},
    {"flag": {"$ne": True}},
    {"fmt": {"$in": []}},
    {"fmt": {"$nin": []}},
    {"$not": {"fmt": {"$in": []}}},
    {"$or": []},
    {"$or": [{}, {"fmt": "GIF"}]},
    {"$not": {}},
]


@pytest.fixture(scope="module")
def both_stores() -> dict[str, object]:
    import uuid

    import chromadb

    from langchain_image_embeddings.vectorstores import ChromaImageStore
    from langchain_image_embeddings.vectorstores.chroma._client import client_settings

    emb = DeterministicFakeEmbedding(size=8)
    client = chromadb.EphemeralClient(settings=client_settings())
    chroma = ChromaImageStore(emb, client=client, collection_name=f"f{uuid.uuid4().hex}")
    stores = {"faiss": FAISSImageStore(emb), "chroma": chroma}
    for store in stores.values():
        store.add_texts(list("abcde"), ROWS, ids=list("abcde"))  # type: ignore[attr-defined]
    return stores


@pytest.mark.parametrize("flt", SHARED_FILTERS, ids=[str(f) for f in SHARED_FILTERS])
def test_chroma_takes_the_same_filter_dicts_as_faiss(
    both_stores: dict[str, object], flt: dict[str, object]
) -> None:
    expected = sorted(i for i, row in zip("abcde", ROWS, strict=True) if metadata_matches(row, flt))
    for name, store in both_stores.items():
        found = sorted(d.id for d in store.similarity_search("a", k=10, filter=flt))  # type: ignore[attr-defined]
        assert found == expected, name


def test_chroma_callable_filter_and_untranslatable_negation(
    both_stores: dict[str, object],
) -> None:
    chroma = both_stores["chroma"]
    hits = chroma.similarity_search("a", k=2, filter=lambda m: m["w"] >= 30)  # type: ignore[attr-defined]
    assert [d.metadata["w"] >= 30 for d in hits] == [True, True]
    with pytest.raises(ValueError, match=r"\$gt"):
        chroma.similarity_search("a", k=2, filter={"$not": {"w": {"$gt": 10}}})  # type: ignore[attr-defined]
