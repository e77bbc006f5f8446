"""The FAISS image store: exact or approximate FAISS indexes in a folder, saved without pickle."""

from __future__ import annotations

from langchain_image_embeddings.vectorstores.faiss._store import FAISSImageStore

__all__ = ["FAISSImageStore"]
