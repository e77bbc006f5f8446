"""Multi-vector (late-interaction) search: pages of patch vectors, candidates then MaxSim.

:class:`MultiVectorImageStore` keeps each page image as one vector per patch (ColPali,
ColQwen2: :mod:`langchain_image_embeddings.encoders.late`), finds candidate pages with a
FAISS index over all patches (:class:`PatchIndex`), and ranks them exactly with MaxSim
(:func:`maxsim_scores`). :class:`MilvusMultiVectorStore` keeps the same pages in Milvus (a
server or Milvus Lite) behind the same LangChain contract (:class:`PageStoreBase`). See
``docs/late-interaction.md``.
"""

from __future__ import annotations

from langchain_image_embeddings.vectorstores.multivector._candidates import (
    DEFAULT_PATCH_INDEX,
    PatchIndex,
    rank_candidate_pages,
)
from langchain_image_embeddings.vectorstores.multivector._contract import (
    PageStoreBase,
    page_filter,
    unit_page,
)
from langchain_image_embeddings.vectorstores.multivector._embedder import MultiVectorEmbedder
from langchain_image_embeddings.vectorstores.multivector._maxsim import (
    gather_rows,
    maxsim,
    maxsim_scores,
    relevance_from_maxsim,
)
from langchain_image_embeddings.vectorstores.multivector._milvus import MilvusMultiVectorStore
from langchain_image_embeddings.vectorstores.multivector._pooling import (
    DEFAULT_POOL_FACTOR,
    pool_tokens,
)
from langchain_image_embeddings.vectorstores.multivector._store import MultiVectorImageStore

__all__ = [
    "DEFAULT_PATCH_INDEX",
    "DEFAULT_POOL_FACTOR",
    "MilvusMultiVectorStore",
    "MultiVectorEmbedder",
    "MultiVectorImageStore",
    "PageStoreBase",
    "PatchIndex",
    "gather_rows",
    "maxsim",
    "maxsim_scores",
    "page_filter",
    "pool_tokens",
    "rank_candidate_pages",
    "relevance_from_maxsim",
    "unit_page",
]
