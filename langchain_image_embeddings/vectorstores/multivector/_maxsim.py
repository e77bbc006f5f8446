"""Late-interaction scoring: MaxSim over pages of patch vectors, and its relevance mapping.

A page is a matrix of unit patch vectors ``D`` (one row per patch), a query a matrix of unit
token vectors ``Q``. Their late-interaction score is ColBERT's **MaxSim**::

    maxsim(Q, D) = sum over query tokens q of  max over patches d of  q · d

Pages are kept as one matrix of rows (all pages' patches, page after page) with the first
row and the row count of each page, so scoring many pages is one matrix product and one
``np.maximum.reduceat``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["gather_rows", "maxsim", "maxsim_scores", "relevance_from_maxsim"]

#: Rows scored per matrix product (bounds the ``tokens x rows`` similarity block in memory).
_BLOCK_ROWS = 1 << 16


def maxsim(query: np.ndarray, page: np.ndarray) -> float:
    """The MaxSim score of one query (tokens x dim) against one page (patches x dim).

    Example:
        .. code-block:: python

            import numpy as np
            from langchain_image_embeddings.vectorstores.multivector import maxsim

            maxsim(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32))  # 2.0
    """
    sims = np.asarray(query, dtype=np.float32) @ np.asarray(page, dtype=np.float32).T
    return float(sims.max(axis=1).sum())


def maxsim_scores(
    query: np.ndarray, rows: np.ndarray, starts: Sequence[int], counts: Sequence[int]
) -> np.ndarray:
    """MaxSim of one query against several pages stored as row ranges of one matrix.

    Args:
        query: Query token vectors, ``(tokens, dim)``.
        rows: Every stored patch vector, ``(rows, dim)`` (``float16`` or ``float32``; a
            memory map works: only the pages asked for are read).
        starts: First row of each page to score.
        counts: Number of rows of each page (each at least 1).

    Returns:
        ``float32`` scores, one per page, in the order given.
    """
    q = np.ascontiguousarray(query, dtype=np.float32)
    scores = np.empty(len(starts), dtype=np.float32)
    done = 0
    while done < len(starts):
        # A block of whole pages, at most _BLOCK_ROWS rows (a bigger page is a block alone).
        end, size = done, 0
        while end < len(starts) and (end == done or size + counts[end] <= _BLOCK_ROWS):
            size += int(counts[end])
            end += 1
        block = gather_rows(rows, starts[done:end], counts[done:end])
        sims = q @ block.T  # (tokens, block rows)
        bounds = np.cumsum([0, *counts[done : end - 1]])
        scores[done:end] = np.maximum.reduceat(sims, bounds, axis=1).sum(axis=0)
        done = end
    return scores


def gather_rows(rows: np.ndarray, starts: Sequence[int], counts: Sequence[int]) -> np.ndarray:
    """The rows of these pages, page after page, as one ``float32`` matrix."""
    if not len(starts):
        return np.zeros((0, rows.shape[1]), dtype=np.float32)
    # Slices, not a fancy index: a memory map then reads each page as one run of bytes.
    return np.concatenate(
        [
            np.asarray(rows[int(s) : int(s) + int(c)], dtype=np.float32)
            for s, c in zip(starts, counts, strict=True)
        ]
    )


def relevance_from_maxsim(score: float, query_tokens: int) -> float:
    """Map a MaxSim score to a relevance in ``[0, 1]`` (same ranking for one query).

    With unit vectors each query token contributes a cosine in ``[-1, 1]``, so
    ``score / query_tokens`` is a mean cosine in ``[-1, 1]``; it is mapped like a
    single-vector cosine: ``(1 + score / query_tokens) / 2``.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.vectorstores.multivector import relevance_from_maxsim

            relevance_from_maxsim(16.0, 32)  # 0.75
    """
    if not math.isfinite(score) or query_tokens <= 0:
        return 0.0
    return min(1.0, max(0.0, (1.0 + score / query_tokens) / 2.0))
