"""The Chroma image store: an embedded Chroma folder or a collection on a Chroma server."""

from __future__ import annotations

from langchain_image_embeddings.vectorstores.chroma._store import ChromaImageStore

__all__ = ["ChromaImageStore"]
