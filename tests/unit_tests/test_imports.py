"""The public API is pinned, and importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys

import langchain_image_embeddings

EXPECTED_ALL = [
    "DEFAULT_MODEL",
    "EncoderError",
    "EncoderInfo",
    "ImageEmbeddings",
    "ImageEmbeddingsError",
    "ImageEncoder",
    "ImageInput",
    "ImageLoadError",
    "ImageLoadOptions",
    "MissingDependencyError",
    "PreprocessConfig",
    "WeightsNotFoundError",
    "create_encoder",
    "list_backends",
    "list_encoders",
    "load_image",
    "register_backend",
    "register_encoder",
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
