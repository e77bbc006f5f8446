"""Text-to-image and image-to-image retrievers: LangChain's standard suite, options, LCEL."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_tests.integration_tests import RetrieversIntegrationTests
from PIL import Image

from langchain_image_embeddings.errors import EncoderError
from langchain_image_embeddings.messages import (
    image_documents_to_content_blocks,
    image_rag_message,
)
from langchain_image_embeddings.retrievers import ImageToImageRetriever, TextToImageRetriever
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.store_helpers import write_folder, write_image

_STORE: dict[str, Any] = {}


@pytest.fixture(scope="module")
def tiny_store(
    tiny_clip_embeddings: Any, tmp_path_factory: pytest.TempPathFactory
) -> FAISSImageStore:
    folder = tmp_path_factory.mktemp("retriever-imgs")
    write_folder(folder, 6)
    write_image(folder / "j.jpg", 60, size=200, fmt="JPEG")
    store = FAISSImageStore(tiny_clip_embeddings)
    store.add_images(sorted(folder.iterdir()))
    _STORE["store"] = store
    _STORE["query_image"] = str(folder / "img03.png")
    return store


@pytest.mark.usefixtures("tiny_store")
class TestTextToImageStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[TextToImageRetriever]:
        return TextToImageRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": _STORE["store"], "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "a photo of a cat"


@pytest.mark.usefixtures("tiny_store")
class TestImageToImageStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[ImageToImageRetriever]:
        return ImageToImageRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": _STORE["store"], "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return str(_STORE["query_image"])


def test_image_query_any_input(tiny_store: FAISSImageStore) -> None:
    query = Path(_STORE["query_image"])
    retriever = ImageToImageRetriever(store=tiny_store, k=3)
    by_path = retriever.invoke(str(query))
    assert by_path[0].page_content == str(query.resolve())
    assert by_path[0].metadata["score"] >= 0.99
    scores = [d.metadata["score"] for d in by_path]
    assert scores == sorted(scores, reverse=True)
    by_bytes = retriever.search_image(query.read_bytes())
    by_pil = retriever.search_image(Image.open(query))
    assert [d.id for d in by_bytes] == [d.id for d in by_pil] == [d.id for d in by_path]


def test_threshold_filter_mmr_and_kwargs(tiny_store: FAISSImageStore) -> None:
    query = _STORE["query_image"]
    scores = [
        d.metadata["score"] for d in ImageToImageRetriever(store=tiny_store, k=3).invoke(query)
    ]
    assert scores[0] > scores[1] > scores[2]  # random tiny weights: close, but ordered
    bar = (scores[0] + scores[1]) / 2
    retriever = ImageToImageRetriever(store=tiny_store, k=5, score_threshold=bar)
    assert len(retriever.invoke(query)) == 1  # only the duplicate clears the bar
    assert len(retriever.invoke(query, score_threshold=0.0)) == 5
    only_jpeg = retriever.invoke(query, filter={"format": "JPEG"}, score_threshold=None)
    assert [d.metadata["format"] for d in only_jpeg] == ["JPEG"]
    mmr = retriever.invoke(query, search_type="mmr", k=4, fetch_k=7)
    assert len(mmr) == 4 and len({d.id for d in mmr}) == 4
    with pytest.raises(TypeError):
        retriever.invoke(query, bogus=1)


async def test_async_and_lcel(tiny_store: FAISSImageStore) -> None:
    retriever = TextToImageRetriever(store=tiny_store, k=2)
    sync_docs = retriever.invoke("a red square")
    async_docs = await retriever.ainvoke("a red square")
    assert [d.id for d in sync_docs] == [d.id for d in async_docs]
    chain = {"docs": retriever, "question": RunnablePassthrough()} | RunnableLambda(
        lambda x: (x["question"], [Path(d.page_content).name for d in x["docs"]])
    )
    question, names = chain.invoke("a red square")
    assert question == "a red square" and len(names) == 2
    image_docs = await ImageToImageRetriever(store=tiny_store, k=1).asearch_image(
        _STORE["query_image"]
    )
    assert image_docs[0].page_content.endswith("img03.png")


def test_text_retriever_needs_a_text_tower(lite0_embeddings: Any, tmp_path: Path) -> None:
    store = FAISSImageStore(lite0_embeddings)
    store.add_images(write_folder(tmp_path, 1))
    with pytest.raises(EncoderError, match="text"):
        TextToImageRetriever(store=store).invoke("a cat")


def test_message_blocks_for_a_vision_llm(tiny_store: FAISSImageStore) -> None:
    docs = ImageToImageRetriever(store=tiny_store, k=2).invoke(
        _STORE["query_image"], filter={"format": "JPEG"}
    )
    docs += ImageToImageRetriever(store=tiny_store, k=1).invoke(_STORE["query_image"])
    blocks = image_documents_to_content_blocks(docs, max_side=64)
    assert [b["type"] for b in blocks] == ["text", "image", "text", "image"]
    assert blocks[0]["text"].startswith("[image 1] ") and blocks[0]["text"].endswith("j.jpg")
    image = Image.open(io.BytesIO(base64.b64decode(blocks[1]["base64"])))
    assert image.format == "JPEG" and max(image.size) == 64  # 200x200 shrunk to the bound
    assert blocks[1]["mime_type"] == "image/jpeg"
    openai = image_documents_to_content_blocks(docs[:1], style="openai", caption=None)
    assert openai[0]["type"] == "image_url"
    assert openai[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    message = image_rag_message("Which is red?", docs, max_side=32)
    assert message.content[0] == {"type": "text", "text": "Which is red?"}
    assert len(message.content) == 1 + len(blocks)
    # the store itself keeps references, never base64
    assert all(not d.page_content.startswith("data:") for d in docs)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("search_type", "cosine"),
        ("lambda_mult", 2.0),
        ("score_threshold", 1.5),
        ("fetch_k", 0),
        ("k", 0),
    ],
)
def test_per_call_options_are_checked_like_the_constructor_ones(
    tiny_store: FAISSImageStore, option: str, value: object
) -> None:
    """Probe round: per-call values the constructor refuses were silently used (an unknown
    search_type ran a similarity search, a threshold of 1.5 returned nothing)."""
    retriever = ImageToImageRetriever(store=tiny_store, k=2)
    with pytest.raises(ValueError, match=option):
        retriever.invoke(_STORE["query_image"], **{option: value})
    with pytest.raises(ValueError, match=option):
        ImageToImageRetriever(store=tiny_store, **{option: value})


def test_a_callable_filter_works_in_the_constructor_and_per_call(
    tiny_store: FAISSImageStore,
) -> None:
    def only_jpeg(metadata: dict[str, Any]) -> bool:
        return bool(metadata["format"] == "JPEG")

    query = _STORE["query_image"]
    per_call = ImageToImageRetriever(store=tiny_store, k=3).invoke(query, filter=only_jpeg)
    built = ImageToImageRetriever(store=tiny_store, k=3, filter=only_jpeg).invoke(query)
    assert [d.metadata["format"] for d in per_call] == ["JPEG"]
    assert [d.id for d in built] == [d.id for d in per_call]


class _RecordingHandler(BaseCallbackHandler):
    """Records the retriever events LangChain's callback system delivers."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any]] = []

    def on_retriever_start(self, serialized: Any, query: Any, **kwargs: Any) -> None:
        self.events.append(("start", query, (kwargs.get("tags"), kwargs.get("metadata"))))

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        self.events.append(("end", [d.id for d in documents], kwargs.get("tags")))


def test_a_stock_store_without_image_embeddings_is_refused_at_construction() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    stock = InMemoryVectorStore(DeterministicFakeEmbedding(size=8))
    for cls in (TextToImageRetriever, ImageToImageRetriever):
        with pytest.raises(ValueError, match=r"InMemoryVectorStore.*as_retriever\(\)"):
            cls(store=stock)


def test_unknown_constructor_options_are_refused_like_per_call_ones(
    tiny_store: FAISSImageStore,
) -> None:
    # as_retriever's spelling is taken (it was refused by pydantic's "Extra inputs")
    retriever = TextToImageRetriever(store=tiny_store, search_kwargs={"k": 1, "fetch_k": 5})
    assert (retriever.k, retriever.fetch_k) == (1, 5) and len(retriever.invoke("a square")) == 1
    with pytest.raises(ValueError, match=r"search_kwargs.*'kk'"):
        TextToImageRetriever(store=tiny_store, search_kwargs={"kk": 1})
    with pytest.raises(ValueError, match="k_size"):
        TextToImageRetriever(store=tiny_store, k_size=1)
    # the pydantic fields every runnable has still work
    retriever = TextToImageRetriever(store=tiny_store, k=1, tags=["t"], metadata={"m": 1})
    assert retriever.tags == ["t"] and len(retriever.invoke("a red square")) == 1


async def test_search_image_goes_through_callbacks_and_config(
    tiny_store: FAISSImageStore,
) -> None:
    query = Image.open(_STORE["query_image"]).convert("RGB")
    retriever = ImageToImageRetriever(store=tiny_store, k=2)
    handler = _RecordingHandler()
    docs = retriever.search_image(query, {"callbacks": [handler], "tags": ["img"]}, k=1)
    assert len(docs) == 1 and docs[0].page_content.endswith("img03.png")
    start, end = handler.events
    assert start[0] == "start" and start[1] is query and start[2][0] == ["img"]
    assert end == ("end", [docs[0].id], ["img"])
    ahandler = _RecordingHandler()
    adocs = await retriever.asearch_image(query, {"callbacks": [ahandler]})
    assert [e[0] for e in ahandler.events] == ["start", "end"]
    assert ahandler.events[1][1] == [d.id for d in adocs] and len(adocs) == 2


def test_callbacks_see_the_query_the_documents_and_the_store(tiny_store: FAISSImageStore) -> None:
    handler = _RecordingHandler()
    retriever = TextToImageRetriever(store=tiny_store, k=2).with_config(tags=["rag"])
    docs = retriever.invoke("a red square", config={"callbacks": [handler]})
    (kind, query, (tags, metadata)), end = handler.events
    assert (kind, query, tags) == ("start", "a red square", ["rag"])
    assert metadata["ls_retriever_name"] == "texttoimage"
    assert metadata["ls_vector_store_provider"] == "FAISSImageStore"
    assert metadata["ls_embedding_provider"] == "ImageEmbeddings"
    assert end[1] == [d.id for d in docs]
