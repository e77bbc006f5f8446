"""The Milvus image store: a collection on a Milvus server or Milvus Lite."""

from __future__ import annotations

from langchain_image_embeddings.vectorstores.milvus._store import MilvusImageStore

__all__ = ["MilvusImageStore"]
