"""One query rule on every model and store; our retrievers over any LangChain store."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_image_embeddings.document_embeddings import (
    ImageDocumentEmbeddings,
    is_image_address,
    resolve_query_mode,
)
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.retrievers import ImageToImageRetriever, TextToImageRetriever
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.store_helpers import write_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return [str(p) for p in write_folder(tmp_path_factory.mktemp("any-store"), 5)]


def _docs(paths: list[str]) -> list[Document]:
    return [Document(page_content=p, metadata={"name": Path(p).name}) for p in paths]


def test_auto_reads_an_image_path_as_the_image_on_a_clip_store(
    tiny_clip_embeddings: Any, folder: list[str]
) -> None:
    """``store.as_retriever().invoke("photos/x.png")`` embedded the path as TEXT on a CLIP
    model, with only a UserWarning."""
    store = FAISSImageStore(tiny_clip_embeddings)
    store.add_images(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "as TEXT" warning: it is an image
        hits = store.as_retriever(search_kwargs={"k": 1}).invoke(folder[2])
        assert hits[0].page_content == folder[2]
        assert store.similarity_search_with_score(folder[3], k=1)[0][1] == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # asked for: the path as text
        as_text = store.similarity_search_with_score(folder[3], k=1, query_mode="text")
    assert as_text[0][1] < 0.999  # the path string, embedded by the text tower
    store.query_mode = "text"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert store.similarity_search_with_score(folder[3], k=1)[0][1] == as_text[0][1]
    store.query_mode = "auto"
    assert store.similarity_search("a red square", k=2)  # prose stays text
    retriever = TextToImageRetriever(store=store, k=1)
    assert retriever.invoke(folder[4])[0].page_content == folder[4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert retriever.invoke(folder[4], query_mode="text")[0].metadata["score"] < 0.999
    with pytest.raises(ValueError, match="query_mode"):
        retriever.invoke("x", query_mode="vision")


def test_the_rule() -> None:
    assert resolve_query_mode("auto", "a cat", supports_text=True) == "text"
    assert resolve_query_mode("auto", "a cat", supports_text=False) == "image"
    assert resolve_query_mode("auto", b"\x89PNG", supports_text=True) == "image"
    assert resolve_query_mode("text", "https://x.org/a.jpg", supports_text=True) == "text"
    assert resolve_query_mode("auto", "https://x.org/a.jpg", supports_text=True) == "image"
    assert is_image_address("gone/cat.jpg") and is_image_address("r.pdf#page=2")
    assert not is_image_address("dummy_text") and not is_image_address("a cat.\nA dog.")


async def test_async_image_search_on_the_store(
    tiny_clip_embeddings: Any, folder: list[str]
) -> None:
    store = FAISSImageStore(tiny_clip_embeddings)
    store.add_images(folder)
    docs = await store.asimilarity_search_by_image(folder[1], k=2)
    scored = await store.asimilarity_search_by_image_with_relevance_score(uri=folder[1], k=1)
    assert docs[0].page_content == scored[0][0].page_content == folder[1]
    assert scored[0][1] == pytest.approx(1.0)
    retriever = ImageToImageRetriever(store=store, k=1)
    assert (await retriever.ainvoke(folder[0]))[0].page_content == folder[0]


def test_a_stock_in_memory_store_through_our_retrievers(
    tiny_clip_embeddings: Any, folder: list[str]
) -> None:
    view = ImageDocumentEmbeddings(tiny_clip_embeddings)
    store = InMemoryVectorStore.from_documents(_docs(folder), view)
    text = TextToImageRetriever(store=store, search_kwargs={"k": 3})
    hits = text.invoke("a red square")
    assert len(hits) == 3 and all(0.0 <= d.metadata["score"] <= 1.0 for d in hits)
    image = ImageToImageRetriever(store=store, k=1)
    (top,) = image.invoke(folder[2])  # became similarity_search_by_vector of the image
    assert top.page_content == folder[2] and top.metadata["score"] == pytest.approx(1.0)
    mmr = image.invoke(folder[2], search_type="mmr", k=2, fetch_k=5)
    assert len(mmr) == 2 and mmr[0].page_content == folder[2]
    by_threshold = ImageToImageRetriever(
        store=store,
        search_type="similarity_score_threshold",
        search_kwargs={"score_threshold": 0.9999},
    )
    assert [d.page_content for d in by_threshold.invoke(folder[2])] == [folder[2]]
    # the stock store's own retriever follows the same rule (ImageDocumentEmbeddings "auto")
    assert store.as_retriever(search_kwargs={"k": 1}).invoke(folder[3])[0].page_content == folder[3]


def test_langchain_qdrant_in_memory_with_mmr(tiny_clip_embeddings: Any, folder: list[str]) -> None:
    """langchain-qdrant probes ``embed_documents(["dummy_text"])`` in ``from_documents`` and
    MMR: that raised ``ImageLoadError: input #0 dummy_text: no such file``."""
    qdrant = pytest.importorskip("langchain_qdrant")
    view = ImageDocumentEmbeddings(tiny_clip_embeddings)
    assert len(view.embed_documents(["dummy_text"])[0]) == tiny_clip_embeddings.dim
    store = qdrant.QdrantVectorStore.from_documents(
        _docs(folder), view, location=":memory:", collection_name=f"q{uuid.uuid4().hex[:8]}"
    )
    own = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5})
    assert own.invoke(folder[1])[0].page_content == folder[1]
    ours = ImageToImageRetriever(store=store, search_type="mmr", search_kwargs={"k": 2})
    assert ours.invoke(folder[1])[0].page_content == folder[1]
    (top,) = ImageToImageRetriever(store=store, k=1).invoke(folder[0])
    assert top.page_content == folder[0] and top.metadata["score"] == pytest.approx(1.0, abs=1e-4)
    assert TextToImageRetriever(store=store, k=2).invoke("a red square")


def test_image_only_models_survive_probes_but_still_report_deleted_files(
    lite0_embeddings: Any, tmp_path: Path
) -> None:
    view = ImageDocumentEmbeddings(lite0_embeddings)
    assert view.embed_documents(["dummy_text"]) == [[0.0] * lite0_embeddings.dim]
    path = write_folder(tmp_path, 1)[0]
    vectors = view.embed_documents(["dummy", str(path)])
    assert any(vectors[1]) and not any(vectors[0])
    with pytest.raises(ImageLoadError, match=r"input #1 .*gone\.jpg"):
        view.embed_documents(["a caption", str(tmp_path / "gone.jpg")])
