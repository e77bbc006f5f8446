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
