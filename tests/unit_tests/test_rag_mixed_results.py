"""The RAG helpers on what real retrievers return: BM25 text beside images
(``EnsembleRetriever``), langchain-chroma's base64 ``page_content``, deleted files."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings
from langchain_image_embeddings.messages import ImageRAGPrompt, image_rag_message
from langchain_image_embeddings.retrievers import TextToImageRetriever
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.store_helpers import write_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _llm(answer: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=answer)]))


def _sent(llm_input: list[BaseMessage]) -> list[str]:
    (message,) = [m for m in llm_input if m.type == "human"]
    return [b["type"] for b in message.content]  # type: ignore[index,union-attr]


def test_bm25_and_image_ensemble_feeds_image_rag_message(
    tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    pytest.importorskip("rank_bm25")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # langchain-community's sunset note
        from langchain_community.retrievers import BM25Retriever
    from langchain_classic.retrievers import EnsembleRetriever

    paths = write_folder(tmp_path / "photos", 3)
    store = FAISSImageStore(tiny_clip_embeddings)
    store.add_images(paths)
    paths[1].unlink()  # deleted since indexing
    bm25 = BM25Retriever.from_texts(
        ["a red rocket on the launch pad", "a cup of coffee", "a tabby cat"], k=2
    )
    ensemble = EnsembleRetriever(
        retrievers=[bm25, TextToImageRetriever(store=store, k=3)], weights=[0.5, 0.5]
    )
    seen: list[list[BaseMessage]] = []
    llm = _llm("the rocket")

    def send(x: dict[str, Any]) -> list[BaseMessage]:
        messages: list[BaseMessage] = [image_rag_message(x["question"], x["docs"], max_side=32)]
        seen.append(messages)
        return messages

    chain = {"docs": ensemble, "question": RunnablePassthrough()} | RunnableLambda(send) | llm
    assert chain.invoke("red rocket").content == "the rocket"
    (message,) = seen[0]
    types = _sent(seen[0])
    assert types.count("image") == 2  # the two images still on disk
    texts = [b["text"] for b in message.content if b["type"] == "text"]  # type: ignore[index,union-attr]
    assert "a red rocket on the launch pad" in texts  # BM25's hit, as text
    (skipped,) = message.response_metadata["skipped_documents"]
    assert skipped["name"] == paths[1].name and skipped["code"] == "not_found"
    assert not any(str(tmp_path) in t for t in texts)  # captions: file names only


def test_a_langchain_chroma_result_feeds_the_helper(
    tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    import chromadb
    from langchain_chroma import Chroma

    paths = [str(p) for p in write_folder(tmp_path / "photos", 3)]
    chroma = Chroma(
        collection_name=f"rag-{uuid.uuid4().hex[:8]}",
        embedding_function=ImageDocumentEmbeddings(tiny_clip_embeddings),
        client=chromadb.EphemeralClient(),
        collection_metadata={"hnsw:space": "cosine"},
    )
    chroma.add_images(uris=paths, metadatas=[{"source": p} for p in paths])
    docs = chroma.similarity_search_by_image(uri=paths[0], k=2)
    assert docs[0].page_content[:4] == "iVBO"  # base64 PNG bytes, as langchain-chroma stores them
    message = image_rag_message("Which?", docs, max_side=16)
    assert _sent([message]) == ["text", "text", "image", "text", "image"]
    assert message.content[1] == {"type": "text", "text": "[image 1] img00.png"}  # type: ignore[index]
    assert message.response_metadata["skipped_documents"] == []
    # and through the prompt template, into a chat model
    prompt = ImageRAGPrompt(max_side=16)
    value = prompt.invoke({"question": "Which?", "docs": docs})
    assert _sent(value.to_messages()).count("image") == 2
