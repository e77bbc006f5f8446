"""LangChain's ``VectorStoreIntegrationTests`` on ``ChromaImageStore`` over a real server.

The server is ``chroma run`` on 127.0.0.1 (session fixture in ``conftest.py``); each test
gets a fresh collection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_image_embeddings.vectorstores import ChromaImageStore

pytestmark = pytest.mark.integration


class TestChromaImageStoreServerStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, chroma_server: tuple[str, int]) -> Iterator[VectorStore]:  # type: ignore[override]
        host, port = chroma_server
        name = f"std{uuid.uuid4().hex[:12]}"
        store = ChromaImageStore.http(host, port, self.get_embeddings(), collection_name=name)
        yield store
        store.client.delete_collection(name)
