"""The image-document embeddings view makes stock LangChain stores and index() work on images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_image_embeddings.document_embeddings import (
    ImageDocumentEmbeddings,
    image_document_embeddings,
)
from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.errors import ImageLoadError
from tests.unit_tests.store_helpers import EncoderSpy, write_folder, write_image


def test_documents_as_images_queries_as_text(tiny_clip_embeddings: Any, tmp_path: Path) -> None:
    paths = [str(p) for p in write_folder(tmp_path, 3)]
    view = image_document_embeddings(tiny_clip_embeddings)
    docs = np.array(view.embed_documents(paths))
    assert np.allclose(docs, np.array(tiny_clip_embeddings.embed_image(paths)), atol=1e-6)
    assert np.allclose(
        view.embed_query("a cat"), tiny_clip_embeddings.embed_query("a cat"), atol=1e-6
    )
    as_image = ImageDocumentEmbeddings(tiny_clip_embeddings, query="image")
    assert np.allclose(as_image.embed_query(paths[1]), docs[1], atol=1e-6)
    with pytest.raises(ImageLoadError):
        view.embed_documents([str(tmp_path / "missing.png")])
    with pytest.raises(ValueError):
        ImageDocumentEmbeddings(tiny_clip_embeddings, query="audio")  # type: ignore[arg-type]


async def test_async_view(tiny_clip_embeddings: Any, tmp_path: Path) -> None:
    paths = [str(p) for p in write_folder(tmp_path, 2)]
    view = ImageDocumentEmbeddings(tiny_clip_embeddings)
    assert np.allclose(await view.aembed_documents(paths), view.embed_documents(paths), atol=1e-6)
    assert np.allclose(await view.aembed_query("x"), view.embed_query("x"), atol=1e-6)


def test_stock_in_memory_vector_store(tiny_clip_embeddings: Any, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    write_folder(folder, 4)
    store = InMemoryVectorStore(ImageDocumentEmbeddings(tiny_clip_embeddings, query="image"))
    docs = ImageDirectoryLoader(folder).load()
    store.add_documents(docs)
    hits = store.similarity_search_with_score(docs[2].page_content, k=2)
    assert hits[0][0].page_content == docs[2].page_content
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    text_store = InMemoryVectorStore(ImageDocumentEmbeddings(tiny_clip_embeddings))
    text_store.add_documents(docs)
    assert len(text_store.similarity_search("a photo", k=3)) == 3


def test_langchain_indexing_api_on_image_documents(
    tiny_clip_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch)
    folder = tmp_path / "imgs"
    paths = write_folder(folder, 4)
    store = InMemoryVectorStore(ImageDocumentEmbeddings(tiny_clip_embeddings))
    manager = InMemoryRecordManager(namespace="images")
    manager.create_schema()

    def run() -> dict[str, Any]:
        docs = ImageDirectoryLoader(folder).load()
        return dict(
            index(
                docs, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256"
            )
        )

    assert run() == {"num_added": 4, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    assert spy.take() == 4
    assert run() == {"num_added": 0, "num_updated": 0, "num_skipped": 4, "num_deleted": 0}
    assert spy.take() == 0  # unchanged: nothing embedded
    write_image(paths[0], seed=55)
    paths[1].unlink()
    assert run() == {"num_added": 1, "num_updated": 0, "num_skipped": 2, "num_deleted": 2}
    assert spy.take() == 1
    assert len(store.store) == 3


def test_store_modules_import_without_heavy_backends() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import langchain_image_embeddings.retrievers, langchain_image_embeddings.sync\n"
        "import langchain_image_embeddings.vectorstores, langchain_image_embeddings.messages\n"
        "import langchain_image_embeddings.document_loaders, langchain_image_embeddings.cli\n"
        "heavy = ('torch', 'faiss', 'chromadb', 'open_clip', 'timm', 'langchain_community', 'langchain_chroma')\n"
        "print(','.join(n for n in heavy if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_text_queries_on_an_image_only_model_fail_at_construction() -> None:
    """``query="text"`` on an image-only model is refused when the view is built, naming the
    model and the fix, without loading any weights (the default, ``"auto"``, reads every
    query of such a model as an image)."""
    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.errors import EncoderError

    embeddings = ImageEmbeddings("timm:efficientnet_lite0", device="cpu")
    with pytest.raises(EncoderError, match=r"timm:efficientnet_lite0.*query='image'"):
        ImageDocumentEmbeddings(embeddings, query="text")
    assert ImageDocumentEmbeddings(embeddings).query == "auto"
    with pytest.raises(EncoderError, match="no text tower"):
        image_document_embeddings(embeddings, query="text")
    view = ImageDocumentEmbeddings(embeddings, query="image")  # the right way: fine
    assert view.query == "image"
    assert not embeddings.encoder.is_loaded  # the check is cheap: no weights were read


def test_a_model_spec_instead_of_image_embeddings_is_a_type_error(
    tiny_clip_embeddings: Any,
) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    for wrong in ("timm:efficientnet_lite0", DeterministicFakeEmbedding(size=4)):
        with pytest.raises(TypeError, match=type(wrong).__name__):
            ImageDocumentEmbeddings(wrong)  # type: ignore[arg-type]
    view = ImageDocumentEmbeddings(tiny_clip_embeddings, query="image")
    assert repr(view) == "ImageDocumentEmbeddings('open_clip:lie-tiny-clip', query='image')"
