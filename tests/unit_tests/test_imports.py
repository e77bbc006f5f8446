"""The public API is pinned, and importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys

import langchain_image_embeddings

EXPECTED_ALL = [
    "ChromaImageStore",
    "DEFAULT_MODEL",
    "EmbeddingResult",
    "EncoderError",
    "EncoderInfo",
    "FAISSImageStore",
    "ImageDirectoryLoader",
    "ImageDocumentEmbeddings",
    "ImageEmbeddings",
    "ImageEmbeddingsError",
    "ImageEncoder",
    "ImageInput",
    "ImageLoadError",
    "ImageLoadOptions",
    "ImageToImageRetriever",
    "ImageURILoader",
    "MissingDependencyError",
    "ModelMismatchError",
    "PreprocessConfig",
    "StoreError",
    "StoreLockedError",
    "TextToImageRetriever",
    "WeightsNotFoundError",
    "create_encoder",
    "image_documents_to_content_blocks",
    "list_backends",
    "list_encoders",
    "load_image",
    "open_store",
    "register_backend",
    "register_encoder",
    "sync_directory",
]


def test_all_is_pinned() -> None:
    assert sorted(langchain_image_embeddings.__all__) == sorted(EXPECTED_ALL)


def test_every_export_resolves() -> None:
    for name in langchain_image_embeddings.__all__:
        assert getattr(langchain_image_embeddings, name) is not None, name


def test_import_does_not_pull_heavy_backends() -> None:
    code = (
        "import sys, langchain_image_embeddings as m; "
        "from langchain_image_embeddings import ImageEmbeddings, load_image, ImageLoadError; "
        "ImageEmbeddings('timm:efficientnet_lite0'); "
        "heavy = [n for n in ('torch', 'faiss', 'chromadb', 'open_clip', 'timm', 'torchvision') "
        "if n in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
