"""The Milvus multi-vector page store against a Milvus Lite server (``milvus-lite server``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.errors import ModelMismatchError
from langchain_image_embeddings.vectorstores import MilvusMultiVectorStore
from langchain_image_embeddings.vectorstores.multivector import maxsim, relevance_from_maxsim
from tests.unit_tests.test_multivector_store import ColourEmbedder, clustered_pages, page_image

pytestmark = pytest.mark.integration


def test_pages_on_a_server_search_delete_and_reopen(
    milvus_server: tuple[str, int], tmp_path: Path
) -> None:
    host, port = milvus_server
    uri, name = f"http://{host}:{port}", f"t{uuid.uuid4().hex[:10]}"
    store = MilvusMultiVectorStore.connect(uri, ColourEmbedder(), collection_name=name)
    red = page_image(tmp_path / "red.png", (255, 0, 0))
    blue = page_image(tmp_path / "blue.png", (0, 0, 255))
    added = store.add_images([red, blue]).added
    assert store.similarity_search("red", k=1)[0].id == added[0]
    # the score is the documented mapping of the exact MaxSim of the stored rows
    tokens = ColourEmbedder().embed_query("blue")
    tokens = tokens / np.linalg.norm(tokens, axis=1, keepdims=True)
    doc, score = store.similarity_search_with_relevance_scores("blue", k=1)[0]
    exact = maxsim(tokens, store.page_vectors(added[1]))
    assert doc.id == added[1] and score == pytest.approx(relevance_from_maxsim(exact, 1), abs=1e-5)
    store.delete([added[0]])
    assert [d.id for d in store.similarity_search("red", k=2)] == [added[1]]
    store.close()

    again = MilvusMultiVectorStore.connect(uri, ColourEmbedder(), collection_name=name)
    assert len(again) == 1 and again.add_images([blue]).skipped == [added[1]]

    class Other(ColourEmbedder):
        model_id = "test:other"

    with pytest.raises(ModelMismatchError):
        MilvusMultiVectorStore.connect(uri, Other(), collection_name=name)
    # vectors only, on the same server: the candidate stage finds the page a query came from
    pages = clustered_pages(30, seed=8)
    plain = MilvusMultiVectorStore.connect(uri, None, collection_name=name + "_v", token_k=16)
    plain.add_vectors([f"p{i}" for i in range(30)], pages, [_doc(i) for i in range(30)])
    assert plain.search_by_tokens(pages[11][:5], k=1)[0][0].id == "p11"
    plain.drop()
    again.drop()
    plain.close()
    again.close()


def _doc(i: int) -> Document:
    return Document(page_content=f"page{i}.png")
