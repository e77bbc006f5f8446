"""The package among LangChain's own pieces: stock stores, the indexing API, LCEL, classic
retrievers, chat-message content blocks and chat models (real Lite0 weights, real photos)."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_core.messages.content import is_data_content_block
from langchain_core.runnables import ConfigurableField, RunnableLambda, RunnablePassthrough

from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings
from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.messages import image_rag_message
from langchain_image_embeddings.retrievers import ImageToImageRetriever
from langchain_image_embeddings.samples import PHOTO_NAMES
from langchain_image_embeddings.vectorstores import FAISSImageStore


def _uris(photos_dir: Path) -> list[str]:
    return [str(photos_dir / f"{name}.jpg") for name in PHOTO_NAMES]


@pytest.fixture(scope="module")
def photo_store(lite0_embeddings: Any, photos_dir: Path) -> FAISSImageStore:
    store = FAISSImageStore(lite0_embeddings)
    store.add_images(_uris(photos_dir))
    return store


def test_image_documents_in_langchains_own_stores(lite0_embeddings: Any, photos_dir: Path) -> None:
    pytest.importorskip("langchain_community")
    import chromadb
    from langchain_chroma import Chroma
    from langchain_community.vectorstores import FAISS

    view = ImageDocumentEmbeddings(lite0_embeddings, query="image")
    docs = [
        Document(page_content=u, metadata={"name": n})
        for u, n in zip(_uris(photos_dir), PHOTO_NAMES, strict=True)
    ]
    query = str(photos_dir / "copies" / "chelsea-crop.jpg")
    faiss_store = FAISS.from_documents(docs, view)
    chroma_store = Chroma.from_documents(
        docs,
        view,
        client=chromadb.EphemeralClient(),
        collection_name=f"eco-{uuid.uuid4().hex[:8]}",
        collection_metadata={"hnsw:space": "cosine"},
    )
    for store in (faiss_store, chroma_store):
        assert store.similarity_search(query, k=1)[0].metadata["name"] == "chelsea"
        assert (
            store.as_retriever(search_kwargs={"k": 2}).invoke(query)[0].metadata["name"]
            == "chelsea"
        )


def test_langchain_chroma_reads_a_chroma_image_store_collection(
    lite0_embeddings: Any, photos_dir: Path, tmp_path: Path
) -> None:
    from langchain_chroma import Chroma

    from langchain_image_embeddings.vectorstores import ChromaImageStore

    ours = ChromaImageStore.persistent(tmp_path / "chroma", lite0_embeddings)
    ours.add_images(_uris(photos_dir))
    theirs = Chroma(
        client=ours.client,
        collection_name=ours.collection_name,
        embedding_function=lite0_embeddings,
    )
    hit = theirs.similarity_search_by_image(
        uri=str(photos_dir / "copies" / "coffee-crop.jpg"), k=1
    )[0]
    assert Path(hit.page_content).name == "coffee.jpg" and hit.metadata["format"] == "JPEG"


def test_indexing_api_with_a_sql_record_manager_over_a_reopened_store(
    lite0_embeddings: Any, photos_dir: Path, tmp_path: Path
) -> None:
    classic = pytest.importorskip("langchain_classic.indexes")
    docs = ImageDirectoryLoader(str(photos_dir), recursive=False).load()
    assert len(docs) == len(PHOTO_NAMES)
    manager = classic.SQLRecordManager("photos", db_url=f"sqlite:///{tmp_path / 'records.sqlite'}")
    manager.create_schema()
    with FAISSImageStore(lite0_embeddings, tmp_path / "index") as store:
        first = index(
            docs, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256"
        )
        # the records are durable at once; a FAISS folder only at save() (close does not save)
        store.save()
    assert first["num_added"] == len(docs)
    store = FAISSImageStore.open(tmp_path / "index", lite0_embeddings)
    again = index(
        docs, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256"
    )
    assert again == {"num_added": 0, "num_updated": 0, "num_skipped": len(docs), "num_deleted": 0}
    # a changed document replaces its old record; a dropped one goes
    changed = Document(
        page_content=docs[0].page_content, metadata={**docs[0].metadata, "tag": "new"}
    )
    result = index(
        [changed, *docs[2:]],
        manager,
        store,
        cleanup="full",
        source_id_key="source",
        key_encoder="sha256",
    )
    assert (result["num_added"], result["num_deleted"]) == (1, 2) and len(store) == len(docs) - 1
    tags = [d.metadata.get("tag") for d in store.get_by_ids(manager.list_keys())]
    assert tags.count("new") == 1


def test_classic_retrievers_compose_with_ours(
    photo_store: FAISSImageStore, photos_dir: Path
) -> None:
    retrievers = pytest.importorskip("langchain_classic.retrievers")
    from langchain_classic.retrievers.document_compressors import EmbeddingsFilter
    from langchain_classic.retrievers.multi_vector import MultiVectorRetriever
    from langchain_core.stores import InMemoryStore
    from langchain_core.vectorstores import InMemoryVectorStore

    query = str(photos_dir / "copies" / "rocket-flip.jpg")
    similar = ImageToImageRetriever(store=photo_store, k=2)
    diverse = ImageToImageRetriever(store=photo_store, k=2, search_type="mmr")
    ensemble = retrievers.EnsembleRetriever(retrievers=[similar, diverse], weights=[0.7, 0.3])
    fused = ensemble.invoke(query)
    assert Path(fused[0].page_content).name == "rocket.jpg" and len(fused) <= 4

    view = photo_store.document_embeddings
    compressed = retrievers.ContextualCompressionRetriever(
        base_compressor=EmbeddingsFilter(
            embeddings=ImageDocumentEmbeddings(view.image_embeddings, query="image"),
            similarity_threshold=0.6,
        ),
        base_retriever=ImageToImageRetriever(store=photo_store, k=8),
    )
    kept = compressed.invoke(query)
    assert 1 <= len(kept) < 8 and Path(kept[0].page_content).name == "rocket.jpg"

    # an image-only model: the children live in a stock store whose view reads queries as
    # image URIs (the image stores' own similarity_search takes text queries only)
    children = InMemoryVectorStore(ImageDocumentEmbeddings(view.image_embeddings, query="image"))
    children.add_documents(
        [
            Document(page_content=u, metadata={"doc_id": n})
            for u, n in zip(_uris(photos_dir), PHOTO_NAMES, strict=True)
        ]
    )
    parents = InMemoryStore()
    parents.mset([(n, Document(page_content=f"the {n} photo")) for n in PHOTO_NAMES])
    found = MultiVectorRetriever(vectorstore=children, docstore=parents, id_key="doc_id").invoke(
        query
    )
    assert found[0].page_content == "the rocket photo"


class _ChatInputs(BaseCallbackHandler):
    def __init__(self) -> None:
        self.messages: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.messages.extend(messages)


def test_rag_messages_reach_a_chat_model_as_standard_image_blocks(
    photo_store: FAISSImageStore, photos_dir: Path
) -> None:
    retriever = ImageToImageRetriever(store=photo_store, k=2)
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="a rocket")]))
    chain = (
        {"docs": retriever, "question": RunnablePassthrough()}
        | RunnableLambda(
            lambda x: [image_rag_message("Which one is a rocket?", x["docs"], max_side=64)]
        )
        | llm
    )
    seen = _ChatInputs()
    answer = chain.invoke(str(photos_dir / "rocket.jpg"), config={"callbacks": [seen]})
    assert answer.content == "a rocket"
    (message,) = seen.messages[0]
    blocks = message.content_blocks  # langchain-core's v1 standard blocks
    assert [b["type"] for b in blocks] == ["text", "text", "image", "text", "image"]
    images = [b for b in message.content if isinstance(b, dict) and b["type"] == "image"]
    assert all(is_data_content_block(b) for b in images)
    assert all(b["mime_type"] == "image/jpeg" for b in blocks if b["type"] == "image")
    openai = convert_to_openai_messages([message])[0]["content"]
    assert openai[2]["type"] == "image_url" and openai[2]["image_url"]["url"].startswith(
        "data:image/jpeg;base64,"
    )


async def test_retriever_runnable_api(photo_store: FAISSImageStore, photos_dir: Path) -> None:
    queries = [str(photos_dir / "copies" / f"{n}-crop.jpg") for n in ("chelsea", "coffee")]
    retriever = ImageToImageRetriever(store=photo_store, k=3)
    expected = [["chelsea.jpg"], ["coffee.jpg"]]
    batched = [[Path(d.page_content).name for d in docs[:1]] for docs in retriever.batch(queries)]
    abatched = [
        [Path(d.page_content).name for d in docs[:1]] for docs in await retriever.abatch(queries)
    ]
    assert batched == abatched == expected
    chunks = [chunk async for chunk in retriever.astream(queries[0])]
    assert len(chunks) == 1 and len(chunks[0]) == 3
    configurable = retriever.configurable_fields(k=ConfigurableField(id="k"))
    assert len(configurable.invoke(queries[0], config={"configurable": {"k": 1}})) == 1
    assert len(configurable.invoke(queries[0])) == 3
    results = await asyncio.gather(*(retriever.ainvoke(q, k=1) for q in queries))
    assert [Path(r[0].page_content).name for r in results] == ["chelsea.jpg", "coffee.jpg"]


def test_one_unloaded_image_embeddings_shared_by_threads(
    tiny_clip_name: str, photos_dir: Path
) -> None:
    import torch

    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder

    torch.manual_seed(0)
    encoder = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    shared = ImageEmbeddings(encoder, device="cpu", batch_size=2)
    uris = _uris(photos_dir)

    def job(i: int) -> list[float]:
        return (
            shared.embed_query(f"photo {i % 3}")
            if i % 2
            else shared.embed_image([uris[i % len(uris)]])[0]
        )

    with ThreadPoolExecutor(6) as pool:  # the first calls race to load the weights
        concurrent = list(pool.map(job, range(18)))
    assert encoder.is_loaded
    sequential = [job(i) for i in range(18)]
    np.testing.assert_allclose(np.asarray(concurrent), np.asarray(sequential), atol=1e-6)


def test_image_documents_index_into_a_stock_store(lite0_embeddings: Any, photos_dir: Path) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(ImageDocumentEmbeddings(lite0_embeddings, query="image"))
    manager = InMemoryRecordManager("stock")
    manager.create_schema()
    docs = ImageDirectoryLoader(str(photos_dir), recursive=False).load()
    assert index(
        docs, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256"
    )["num_added"] == len(docs)
    assert index(
        docs, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256"
    )["num_skipped"] == len(docs)
    hit = store.similarity_search(str(photos_dir / "copies" / "astronaut-small.jpg"), k=1)[0]
    assert Path(hit.page_content).name == "astronaut.jpg"
