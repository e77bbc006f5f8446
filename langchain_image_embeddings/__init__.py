"""Local image embeddings (open_clip, timm, torchvision) for LangChain.

Importing the package is cheap: torch, the model backends, FAISS and Chroma are imported
only when a feature that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings
    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader, ImageURILoader
    from langchain_image_embeddings.embeddings import (
        DEFAULT_MODEL,
        EmbeddingResult,
        ImageEmbeddings,
    )
    from langchain_image_embeddings.encoders import (
        EncoderInfo,
        create_encoder,
        list_backends,
        list_encoders,
        register_backend,
        register_encoder,
    )
    from langchain_image_embeddings.encoders.base import ImageEncoder, PreprocessConfig
    from langchain_image_embeddings.errors import (
        EncoderError,
        ImageEmbeddingsError,
        ImageLoadError,
        MissingDependencyError,
        ModelMismatchError,
        StoreError,
        StoreLockedError,
        WeightsNotFoundError,
    )
    from langchain_image_embeddings.images._load import ImageInput, load_image
    from langchain_image_embeddings.images._options import ImageLoadOptions
    from langchain_image_embeddings.messages import (
        image_documents_to_content_blocks,
        image_rag_message,
    )
    from langchain_image_embeddings.pipeline._report import PipelineProgress
    from langchain_image_embeddings.retrievers import ImageToImageRetriever, TextToImageRetriever
    from langchain_image_embeddings.sync import SyncResult, sync_directory
    from langchain_image_embeddings.vectorstores import open_store
    from langchain_image_embeddings.vectorstores.chroma._store import ChromaImageStore
    from langchain_image_embeddings.vectorstores.faiss._store import FAISSImageStore
    from langchain_image_embeddings.vectorstores.records import AddResult

from langchain_image_embeddings._version import __version__ as __version__

_EXPORTS: dict[str, str] = {
    "ImageDirectoryLoader": "document_loaders",
    "ImageURILoader": "document_loaders",
    "ImageDocumentEmbeddings": "document_embeddings",
    "FAISSImageStore": "vectorstores.faiss",
    "ChromaImageStore": "vectorstores.chroma",
    "open_store": "vectorstores",
    "sync_directory": "sync",
    "SyncResult": "sync",
    "AddResult": "vectorstores",
    "PipelineProgress": "pipeline",
    "TextToImageRetriever": "retrievers",
    "ImageToImageRetriever": "retrievers",
    "image_documents_to_content_blocks": "messages",
    "image_rag_message": "messages",
    "StoreError": "errors",
    "StoreLockedError": "errors",
    "ModelMismatchError": "errors",
    "EmbeddingResult": "embeddings",
    "DEFAULT_MODEL": "embeddings",
    "ImageEmbeddings": "embeddings",
    "EncoderInfo": "encoders",
    "create_encoder": "encoders",
    "list_backends": "encoders",
    "list_encoders": "encoders",
    "register_backend": "encoders",
    "register_encoder": "encoders",
    "ImageEncoder": "encoders.base",
    "PreprocessConfig": "encoders.base",
    "EncoderError": "errors",
    "ImageEmbeddingsError": "errors",
    "ImageLoadError": "errors",
    "MissingDependencyError": "errors",
    "WeightsNotFoundError": "errors",
    "ImageInput": "images",
    "ImageLoadOptions": "images",
    "load_image": "images",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_image_embeddings' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"langchain_image_embeddings.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
