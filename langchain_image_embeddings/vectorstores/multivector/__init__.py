"""Multi-vector (late-interaction) search: pages of patch vectors, candidates then MaxSim.

:class:`MultiVectorImageStore` keeps each page image as one vector per patch (ColPali,
ColQwen2: :mod:`langchain_image_embeddings.encoders.late`), finds candidate pages with a
FAISS index over all patches (:class:`PatchIndex`), and ranks them exactly with MaxSim
(:func:`maxsim_scores`). See ``docs/late-interaction.md``.
"""

from __future__ import annotations

from langchain_image_embeddings.vectorstores.multivector._candidates import (
    DEFAULT_PATCH_INDEX,
    PatchIndex,
)
from langchain_image_embeddings.vectorstores.multivector._embedder import MultiVectorEmbedder
from langchain_image_embeddings.vectorstores.multivector._maxsim import (
    gather_rows,
    maxsim,
    maxsim_scores,
    relevance_from_maxsim,
)
from langchain_image_embeddings.vectorstores.multivector._pooling import (
    DEFAULT_POOL_FACTOR,
    pool_tokens,
)
from langchain_image_embeddings.vectorstores.multivector._store import MultiVectorImageStore

__all__ = [
    "DEFAULT_PATCH_INDEX",
    "DEFAULT_POOL_FACTOR",
    "MultiVectorEmbedder",
    "MultiVectorImageStore",
    "PatchIndex",
    "gather_rows",
    "maxsim",
    "maxsim_scores",
    "pool_tokens",
    "relevance_from_maxsim",
]
