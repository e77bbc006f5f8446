"""LangChain's own standard test suites, run on a CLIP-type ``ImageEmbeddings``."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_image_embeddings import ImageEmbeddings


@pytest.fixture(autouse=True)
def _tiny_clip_registered(tiny_clip_name: str) -> None:
    """The tiny CLIP architecture must be known to open_clip before the suites build it."""


_PARAMS: dict[str, Any] = {
    "model": "open_clip:lie-tiny-clip",
    "model_kwargs": {"pretrained": None, "allow_random_weights": True},
    "device": "cpu",
    "batch_size": 4,
}


class TestImageEmbeddingsStandardUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[ImageEmbeddings]:
        return ImageEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return dict(_PARAMS)


class TestImageEmbeddingsStandardIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[ImageEmbeddings]:
        return ImageEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return dict(_PARAMS)
