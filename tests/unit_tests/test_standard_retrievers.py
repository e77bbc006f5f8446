"""LangChain's standard retriever suite on the stores the FAISS-backed runs in
``test_retrievers.py`` leave out: an embedded Chroma store, with the tiny CLIP (text queries)
and with the real EfficientNet-Lite0 weights (image queries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_image_embeddings.retrievers import ImageToImageRetriever, TextToImageRetriever
from langchain_image_embeddings.samples import PHOTO_NAMES
from langchain_image_embeddings.vectorstores import ChromaImageStore

_STORES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def chroma_stores(
    tiny_clip_embeddings: Any,
    lite0_embeddings: Any,
    photos_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("standard-retrievers")
    uris = [str(photos_dir / f"{name}.jpg") for name in PHOTO_NAMES]
    for key, embeddings in (("clip", tiny_clip_embeddings), ("lite0", lite0_embeddings)):
        store = ChromaImageStore.persistent(root / key, embeddings)
        store.add_images(uris)
        _STORES[key] = store
    _STORES["query_image"] = str(photos_dir / "copies" / "chelsea-crop.jpg")
    return _STORES


@pytest.mark.usefixtures("chroma_stores")
class TestTextToImageChromaStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[TextToImageRetriever]:
        return TextToImageRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": _STORES["clip"]}

    @property
    def retriever_query_example(self) -> str:
        return "a cat"


@pytest.mark.usefixtures("chroma_stores")
class TestImageToImageChromaLite0Standard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[ImageToImageRetriever]:
        return ImageToImageRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": _STORES["lite0"], "filter": {"format": "JPEG"}}

    @property
    def retriever_query_example(self) -> str:
        return str(_STORES["query_image"])


def test_the_lite0_chroma_retriever_finds_the_photo_a_copy_came_from(
    chroma_stores: dict[str, Any],
) -> None:
    docs = ImageToImageRetriever(store=chroma_stores["lite0"], k=1).invoke(
        chroma_stores["query_image"]
    )
    assert Path(docs[0].page_content).name == "chelsea.jpg" and docs[0].metadata["score"] > 0.5
