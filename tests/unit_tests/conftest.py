"""Fixtures of the unit tests that several modules share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from tests.unit_tests.store_helpers import StoreFactory


@pytest.fixture(params=["faiss", "chroma"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory of an empty FAISS store (folder) or embedded Chroma store, per param."""
    from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore

    def factory(embeddings: Any) -> ImageVectorStore:
        if request.param == "faiss":
            return FAISSImageStore(embeddings, tmp_path / "faiss")
        return ChromaImageStore.persistent(tmp_path / "chroma", embeddings)

    return factory


@pytest.fixture
def fresh_tiny_clip(tiny_clip_name: str) -> Any:
    """A new, loaded tiny CLIP (not the shared session fixture, which training would change)."""
    import torch

    from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder

    torch.manual_seed(0)
    encoder = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    encoder.load()
    return encoder
