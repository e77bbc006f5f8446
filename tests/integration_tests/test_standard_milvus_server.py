"""LangChain's ``VectorStoreIntegrationTests`` on ``MilvusImageStore`` over a Milvus Lite server.

The server is ``milvus-lite server`` on 127.0.0.1 (session fixture in ``conftest.py``); each
test gets a fresh collection, created on the first write (the suite's fake embeddings are
6-d text embeddings, so the dimension is known only then).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_image_embeddings.vectorstores import MilvusImageStore

pytestmark = pytest.mark.integration


class TestMilvusImageStoreServerStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, milvus_server: tuple[str, int]) -> Iterator[VectorStore]:  # type: ignore[override]
        host, port = milvus_server
        name = f"std{uuid.uuid4().hex[:12]}"
        store = MilvusImageStore.http(host, port, self.get_embeddings(), collection_name=name)
        yield store
        store.drop()
        store.close()
