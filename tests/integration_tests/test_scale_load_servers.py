"""Parquet shards (``imgemb embed-dataset``) bulk-loaded into a real Chroma server and a real
Milvus Lite server give the same records and search results as indexing the folder directly
(issue 11)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.scale import embed_dataset, load_shards, plan_shards
from langchain_image_embeddings.sync import sync_directory
from langchain_image_embeddings.vectorstores import ChromaImageStore, MilvusImageStore
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from tests.scale_tests.corpus import BAD_FILES, save_tiny_model, search_results, write_corpus

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("server", ["chroma_server", "milvus_server"])
def test_shards_load_into_a_server_like_add_images(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    host, port = request.getfixturevalue(server)
    kind = ChromaImageStore if server == "chroma_server" else MilvusImageStore
    corpus = write_corpus(tmp_path / "corpus", count=60)
    embeddings = ImageEmbeddings(save_tiny_model(tmp_path / "model"), device="cpu", batch_size=16)
    embed_dataset(plan_shards(corpus, shard_size=16), tmp_path / "shards", embeddings)

    def store() -> ImageVectorStore:
        name = f"t{uuid.uuid4().hex[:12]}"
        return kind.http(host, port, embeddings, collection_name=name)

    direct, loaded = store(), store()
    sync_directory(direct, corpus)
    result = load_shards(loaded, tmp_path / "shards", batch_size=25).result
    assert len(result.added) == len(loaded) == len(direct) == 60
    assert sorted(e.code for e in result.failures) == sorted(BAD_FILES.values())
    assert loaded.records() == direct.records()
    queries = [str(corpus / "img" / "p00" / f"{n:03d}.jpg") for n in (0, 4, 9)]
    assert search_results(loaded, queries) == search_results(direct, queries)
    assert load_shards(loaded, tmp_path / "shards").result.added == []
    assert len(loaded) == 60
