"""The public API is pinned, and importing the package stays cheap."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import langchain_image_embeddings

ROOT = Path(__file__).resolve().parents[2]

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
    "evaluate",
    "image_documents_to_content_blocks",
    "image_rag_message",
    "list_backends",
    "list_encoders",
    "list_models",
    "load_image",
    "open_store",
    "register_backend",
    "register_encoder",
    "sync_directory",
]


#: The import paths the README and docs show users (and the ``imgemb`` entry point), pinned:
#: a move inside the package must keep each of them working.
PUBLIC_IMPORTS: dict[str, list[str]] = {
    "langchain_image_embeddings": EXPECTED_ALL,
    "langchain_image_embeddings.cli": ["build_parser", "main"],
    "langchain_image_embeddings.document_embeddings": ["ImageDocumentEmbeddings"],
    "langchain_image_embeddings.document_loaders": ["ImageDirectoryLoader", "ImageURILoader"],
    "langchain_image_embeddings.documents": ["PDFImageLoader", "PDFOptions"],
    "langchain_image_embeddings.duplicates": ["find_duplicates"],
    "langchain_image_embeddings.encoders.runtimes": ["with_runtime"],
    "langchain_image_embeddings.encoders.late": ["LateInteractionEncoder"],
    "langchain_image_embeddings.evaluation": ["EvalSetting", "evaluate", "settings_grid"],
    "langchain_image_embeddings.images": ["ImageLoadOptions", "read_image_source"],
    "langchain_image_embeddings.messages": [
        "ImageRAGPrompt",
        "SkippedDocument",
        "image_rag_message",
    ],
    "langchain_image_embeddings.retrievers": ["ImageToImageRetriever", "TextToImageRetriever"],
    "langchain_image_embeddings.rerankers": ["MaxSimReranker"],
    "langchain_image_embeddings.scale": [
        "EmbedSettings",
        "embed_dataset",
        "load_shards",
        "plan_shards",
    ],
    "langchain_image_embeddings.scale.bulk_import": ["import_shards"],
    "langchain_image_embeddings.scale.ray": ["RayOptions", "embed_dataset_ray"],
    "langchain_image_embeddings.serve": ["ServeSettings", "create_app"],
    "langchain_image_embeddings.sync": ["sync_directory"],
    "langchain_image_embeddings.tools": ["image_search_tool"],
    "langchain_image_embeddings.training": ["LabeledImages", "fit"],
    "langchain_image_embeddings.vectorstores": [
        "ChromaImageStore",
        "FAISSImageStore",
        "MilvusImageStore",
        "MilvusMultiVectorStore",
        "MultiVectorImageStore",
        "open_store",
    ],
    "langchain_image_embeddings.vectorstores.multivector": [
        "DEFAULT_POOL_FACTOR",
        "maxsim",
        "pool_tokens",
    ],
}


def documented_imports() -> set[tuple[str, str]]:
    """Every ``from langchain_image_embeddings... import name`` in the README and docs/."""
    found: set[tuple[str, str]] = set()
    pattern = r"from (langchain_image_embeddings[\w.]*) import (\([^)]*\)|[^\n`]+)"
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in re.finditer(pattern, path.read_text(encoding="utf-8")):
            names = re.sub(r"#[^\n]*", "", match.group(2).strip("()"))
            for name in names.split(","):
                if name.split(" as ")[0].strip():
                    found.add((match.group(1), name.split(" as ")[0].strip()))
    return found


def test_documented_import_paths_are_pinned() -> None:
    """A new import path in the docs is added to PUBLIC_IMPORTS, so it is kept working."""
    pinned = {(module, name) for module, names in PUBLIC_IMPORTS.items() for name in names}
    assert documented_imports() - pinned == set()


def test_public_import_paths_resolve() -> None:
    for module_name, names in PUBLIC_IMPORTS.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert getattr(module, name, None) is not None, f"from {module_name} import {name}"
            public = getattr(module, "__all__", None)
            assert public is None or name in public, f"{name} not in {module_name}.__all__"


def test_lazy_exports_cache_and_refuse_unknown_names() -> None:
    """The one lazy-export helper: a name resolves once to its module's object, is kept in
    the package's namespace, is listed by dir(), and an unknown name is an AttributeError."""
    import types

    from langchain_image_embeddings._exports import lazy_exports

    package = types.ModuleType("lazy_demo")
    sys.modules["lazy_demo"] = package
    try:
        getattr_, dir_ = lazy_exports("lazy_demo", {"dumps": "json", "Path": "pathlib"})
        package.__getattr__ = getattr_  # type: ignore[method-assign]
        assert "dumps" not in vars(package) and {"dumps", "Path"} <= set(dir_())
        import json

        assert package.dumps is json.dumps and vars(package)["dumps"] is json.dumps
        try:
            package.loads  # noqa: B018
        except AttributeError as exc:
            assert "'lazy_demo' has no attribute 'loads'" in str(exc)
        else:
            raise AssertionError("an unknown name resolved")
    finally:
        del sys.modules["lazy_demo"]


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
