"""The public API is pinned, and importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys

import langchain_image_embeddings

EXPECTED_ALL = [
    "AddResult",
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
    "PipelineProgress",
    "PreprocessConfig",
    "StoreError",
    "StoreLockedError",
    "SyncResult",
    "TextToImageRetriever",
    "WeightsNotFoundError",
    "create_encoder",
    "image_documents_to_content_blocks",
    "image_rag_message",
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


def test_result_types_and_message_helpers_are_top_level() -> None:
    """What users receive or call after a search is importable from the package itself."""
    from langchain_image_embeddings import (
        AddResult,
        EmbeddingResult,
        PipelineProgress,
        SyncResult,
        image_documents_to_content_blocks,
        image_rag_message,
    )
    from langchain_image_embeddings.embeddings import EmbeddingResult as embeddings_result
    from langchain_image_embeddings.messages import image_rag_message as rag_message
    from langchain_image_embeddings.pipeline import PipelineProgress as pipeline_progress
    from langchain_image_embeddings.sync import SyncResult as sync_result

    assert EmbeddingResult is embeddings_result and PipelineProgress is pipeline_progress
    assert SyncResult is sync_result and image_rag_message is rag_message
    assert AddResult.__name__ == "AddResult" and callable(image_documents_to_content_blocks)
    assert set(dir(langchain_image_embeddings)) >= {"AddResult", "SyncResult", "image_rag_message"}


def test_import_does_not_pull_heavy_backends() -> None:
    code = (
        "import sys, langchain_image_embeddings as m; "
        "from langchain_image_embeddings import ImageEmbeddings, load_image, ImageLoadError; "
        "from langchain_image_embeddings import AddResult, SyncResult, EmbeddingResult; "
        "from langchain_image_embeddings import PipelineProgress, image_rag_message; "
        "ImageEmbeddings('timm:efficientnet_lite0'); "
        "heavy = [n for n in ('torch', 'faiss', 'chromadb', 'open_clip', 'timm', 'torchvision') "
        "if n in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_parser_and_training_package_import_no_torch() -> None:
    """``imgemb --help`` / ``imgemb info`` build the whole parser (finetune flags included,
    derived from FitConfig): that must not import torch (it cost ~1 s per command)."""
    code = (
        "import sys; from langchain_image_embeddings.cli import build_parser; "
        "p = build_parser(); p.parse_args(['finetune', '--data', 'd', '--out', 'o']); "
        "import langchain_image_embeddings.training as t; t.FitConfig(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_training_exports_resolve_to_their_objects() -> None:
    import langchain_image_embeddings.training as training
    import langchain_image_embeddings.training.loop  # noqa: F401  (a submodule import first)

    assert callable(training.fit) and training.fit.__name__ == "fit"
    for name in training.__all__:
        assert getattr(training, name) is not None, name
