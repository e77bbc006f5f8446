"""Local image embeddings (open_clip, timm, torchvision) for LangChain.

Importing the package is cheap: torch, the model backends, FAISS and Chroma are imported
only when a feature that needs them is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_image_embeddings._exports import lazy_exports
from langchain_image_embeddings._version import __version__ as __version__

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
        list_models,
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
    from langchain_image_embeddings.evaluation import evaluate
    from langchain_image_embeddings.images import ImageInput, ImageLoadOptions, load_image
    from langchain_image_embeddings.messages import (
        image_documents_to_content_blocks,
        image_rag_message,
    )
    from langchain_image_embeddings.pipeline import PipelineProgress
    from langchain_image_embeddings.retrievers import ImageToImageRetriever, TextToImageRetriever
    from langchain_image_embeddings.sync import SyncResult, sync_directory
    from langchain_image_embeddings.vectorstores import AddResult, open_store
    from langchain_image_embeddings.vectorstores.chroma import ChromaImageStore
    from langchain_image_embeddings.vectorstores.faiss import FAISSImageStore

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

# Each name and the public module it comes from (imported on first use: torch, FAISS and
# Chroma stay out of ``import langchain_image_embeddings``).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AddResult": ".vectorstores",
        "ChromaImageStore": ".vectorstores.chroma",
        "DEFAULT_MODEL": ".embeddings",
        "EmbeddingResult": ".embeddings",
        "EncoderError": ".errors",
        "EncoderInfo": ".encoders",
        "FAISSImageStore": ".vectorstores.faiss",
        "ImageDirectoryLoader": ".document_loaders",
        "ImageDocumentEmbeddings": ".document_embeddings",
        "ImageEmbeddings": ".embeddings",
        "ImageEmbeddingsError": ".errors",
        "ImageEncoder": ".encoders.base",
        "ImageInput": ".images",
        "ImageLoadError": ".errors",
        "ImageLoadOptions": ".images",
        "ImageToImageRetriever": ".retrievers",
        "ImageURILoader": ".document_loaders",
        "MissingDependencyError": ".errors",
        "ModelMismatchError": ".errors",
        "PipelineProgress": ".pipeline",
        "PreprocessConfig": ".encoders.base",
        "StoreError": ".errors",
        "StoreLockedError": ".errors",
        "SyncResult": ".sync",
        "TextToImageRetriever": ".retrievers",
        "WeightsNotFoundError": ".errors",
        "create_encoder": ".encoders",
        "evaluate": ".evaluation",
        "image_documents_to_content_blocks": ".messages",
        "image_rag_message": ".messages",
        "list_backends": ".encoders",
        "list_encoders": ".encoders",
        "list_models": ".encoders",
        "load_image": ".images",
        "open_store": ".vectorstores",
        "register_backend": ".encoders",
        "register_encoder": ".encoders",
        "sync_directory": ".sync",
    },
)
