"""The Milvus image store: a collection on a Milvus server or Milvus Lite; and the client of
a Milvus server's import jobs (bulk import of Parquet files from its bucket)."""

from __future__ import annotations

from langchain_image_embeddings.vectorstores.milvus._import import (
    ImportProgress,
    MilvusImportJobs,
)
from langchain_image_embeddings.vectorstores.milvus._store import MilvusImageStore

__all__ = ["ImportProgress", "MilvusImageStore", "MilvusImportJobs"]
