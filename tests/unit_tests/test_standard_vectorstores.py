"""LangChain's own ``VectorStoreIntegrationTests`` on the image stores themselves.

The suite brings its own fake text embeddings (``DeterministicFakeEmbedding``): the stores
accept any ``Embeddings`` and behave as ordinary LangChain vector stores with them. The
Chroma server run of the same suite is in ``tests/integration_tests``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore


class TestFAISSImageStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[VectorStore]:  # type: ignore[override]
        store = FAISSImageStore(self.get_embeddings(), tmp_path / "faiss")
        yield store
        store.close()


class TestFAISSImageStoreInMemoryStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self) -> Iterator[VectorStore]:  # type: ignore[override]
        yield FAISSImageStore(self.get_embeddings())


class TestChromaImageStoreEmbeddedStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[VectorStore]:  # type: ignore[override]
        store = ChromaImageStore.persistent(tmp_path / "chroma", self.get_embeddings())
        yield store
        store.close()


# -- found by the probe round: where the stores disagreed with each other or with LangChain --
@pytest.fixture(params=["faiss", "chroma"])
def text_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    embeddings = DeterministicFakeEmbedding(size=8)
    store: FAISSImageStore | ChromaImageStore
    if request.param == "faiss":
        store = FAISSImageStore(embeddings, tmp_path / "faiss")
    else:
        store = ChromaImageStore.persistent(tmp_path / "chroma", embeddings)
    yield store
    store.close()


def test_get_by_ids_follows_the_order_asked_for(text_store: VectorStore) -> None:
    text_store.add_texts(list("abcd"), ids=list("abcd"))
    assert [d.id for d in text_store.get_by_ids(["c", "missing", "a", "d"])] == ["c", "a", "d"]


def test_list_metadata_comes_back_as_lists(text_store: VectorStore) -> None:
    meta = {"nums": [1, 2], "flags": [True, False], "floats": [0.5], "tags": ["x"], "n": 3}
    text_store.add_texts(["a"], [meta], ids=["a"])
    assert text_store.get_by_ids(["a"])[0].metadata == meta
    hits = text_store.similarity_search("a", k=1, filter={"nums": {"$contains": 2}})
    assert [d.id for d in hits] == ["a"]


def test_unreadable_image_with_given_ids_names_its_index(
    lite0_embeddings: object, tmp_path: Path
) -> None:
    from langchain_image_embeddings.errors import ImageLoadError
    from tests.unit_tests.store_helpers import write_image

    good = write_image(tmp_path / "good.png", seed=1)
    store = FAISSImageStore(lite0_embeddings)  # type: ignore[arg-type]
    with pytest.raises(ImageLoadError) as caught:
        store.add_texts([str(good), str(tmp_path / "gone.png")], ids=["g", "x"])
    assert caught.value.index == 1 and "nothing was written" in str(caught.value)
    assert len(store) == 0


@pytest.mark.parametrize(
    ("vector", "reason"),
    [([1.0, 2.0], "dimension"), ([0.0] * 8, "zero"), ([float("nan")] * 8, "NaN")],
)
def test_a_bad_query_vector_is_a_store_error(
    text_store: VectorStore, vector: list[float], reason: str
) -> None:
    """Probe round: FAISS raised numpy's matmul error for a wrong dimension and answered a
    zero or NaN query with arbitrary documents."""
    from langchain_image_embeddings.errors import StoreError

    text_store.add_texts(["a", "b"], ids=["a", "b"])
    with pytest.raises(StoreError, match=reason):
        text_store.similarity_search_by_vector(vector, k=1)
    with pytest.raises(StoreError, match=reason):
        text_store.max_marginal_relevance_search_by_vector(vector, k=1)


def test_repeated_ids_in_get_and_delete(text_store: VectorStore) -> None:
    """Probe round: Chroma refused repeated ids ("Expected IDs to be unique"); FAISS and
    LangChain's InMemoryVectorStore return a document per id asked for and delete once."""
    text_store.add_texts(["a", "b"], ids=["a", "b"])
    assert [d.id for d in text_store.get_by_ids(["a", "a", "b"])] == ["a", "a", "b"]
    text_store.delete(["a", "a"])
    assert [d.id for d in text_store.get_by_ids(["a", "b"])] == ["b"]
