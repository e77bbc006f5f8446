"""Token pooling: fewer vectors per page for less storage, at a measured cost in quality.

As colpali-engine's ``HierarchicalTokenPooler``: a page's patch vectors are clustered
(agglomerative, Ward linkage on the unit vectors) into ``ceil(patches / pool_factor)``
groups and each group is replaced by its mean, normalised again. Neighbouring patches of
white margin or of one paragraph are near duplicates, so their mean keeps the MaxSim a query
token gets from the group while the page stores a fraction of the vectors.

``pool_factor=3`` is the factor colpali-engine's authors recommend (about 97% of the
retrieval quality at a third of the storage); ``benchmarks/late.py`` measures the cost on
synthetic data (see ``docs/late-interaction.md``).
"""

from __future__ import annotations

import math

import numpy as np

from langchain_image_embeddings._optional import require

__all__ = ["DEFAULT_POOL_FACTOR", "pool_tokens"]

#: The documented factor: a third of the vectors (colpali-engine's recommendation).
DEFAULT_POOL_FACTOR = 3


def pool_tokens(page: np.ndarray, pool_factor: int = DEFAULT_POOL_FACTOR) -> np.ndarray:
    """Pool a page's patch vectors into ``ceil(patches / pool_factor)`` mean vectors.

    Args:
        page: ``(patches, dim)`` unit rows.
        pool_factor: Patches per pooled vector on average; 1 returns the page unchanged.

    Returns:
        ``float32`` unit rows, ``(ceil(patches / pool_factor), dim)`` (fewer when patches
        are exact duplicates).

    Example:
        .. code-block:: python

            import numpy as np
            from langchain_image_embeddings.vectorstores.multivector import pool_tokens

            page = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
            pool_tokens(page, 3).shape   # (10, 8)
    """
    if pool_factor < 1:
        raise ValueError(f"pool_factor must be at least 1, got {pool_factor}")
    rows = np.asarray(page, dtype=np.float32)
    groups = math.ceil(len(rows) / pool_factor)
    if pool_factor == 1 or len(rows) <= 1 or groups >= len(rows):
        return rows.copy()
    hierarchy = require("scipy.cluster.hierarchy", "scipy")
    tree = hierarchy.linkage(rows.astype(np.float64), method="ward")
    labels = hierarchy.fcluster(tree, t=groups, criterion="maxclust") - 1
    count = int(labels.max()) + 1
    sums = np.zeros((count, rows.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, rows)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    pooled: np.ndarray = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return pooled
