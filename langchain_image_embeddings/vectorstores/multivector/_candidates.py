"""The candidate stage: a FAISS index over every patch vector, queried once per query token.

Each query token retrieves its ``token_k`` nearest patches; the pages those patches belong
to are the candidates that MaxSim then scores exactly. Pages whose best patches are near no
query token cannot win MaxSim by much, so a few hundred candidates out of many thousand
pages keep the exact top pages (``benchmarks/late.py`` measures how often).

The index is built from a FAISS factory string: ``"SQfp16"`` (the default: every patch,
``float16``, exact inner products), ``"IVF4096,PQ32"`` (compressed, for millions of
patches; trained on a sample of the patches when first built), or anything else
``faiss.index_factory`` accepts. It lives in memory only and is rebuilt from the stored
patch vectors when a store is opened.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError

__all__ = ["DEFAULT_PATCH_INDEX", "PatchIndex", "rank_candidate_pages"]

#: Exact inner products over ``float16`` patches: 2 bytes per number, no training.
DEFAULT_PATCH_INDEX = "SQfp16"

#: Training points per inverted list (faiss warns below 39) and the most used.
_TRAIN_PER_LIST = 64
_TRAIN_MAX = 65_536
#: Rows added to the index per call (bounds the ``float32`` copy of a chunk).
_ADD_CHUNK = 1 << 18


class PatchIndex:
    """A FAISS inner-product index over patch rows, mapping hits to page slots.

    Args:
        dim: Dimension of the patch vectors.
        factory: A ``faiss.index_factory`` string (see the module docs).
        nprobe: Inverted lists visited per query token (IVF indexes only).

    Example:
        .. code-block:: python

            import numpy as np
            from langchain_image_embeddings.vectorstores.multivector import PatchIndex

            rows = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
            index = PatchIndex(8)
            index.add(rows, page_of_rows=np.repeat(np.arange(10), 10))
            index.candidate_pages(rows[:3], token_k=5)   # page slots, e.g. array([0, ...])
    """

    def __init__(self, dim: int, factory: str = DEFAULT_PATCH_INDEX, *, nprobe: int = 32) -> None:
        self.dim = dim
        self.factory = factory
        self.nprobe = nprobe
        self._faiss: Any = require("faiss", "faiss-cpu")
        try:
            self._index: Any = self._faiss.index_factory(
                dim, factory, self._faiss.METRIC_INNER_PRODUCT
            )
        except RuntimeError as exc:
            raise StoreError(f"bad patch index {factory!r}: {exc}") from exc
        # "PQ32" asks faiss for polysemous training (a code reordering for Hamming
        # pre-filters this search never uses): 6x the training time measured (85 s against
        # 14 s for IVF256,PQ32 on 16,384 rows), so it is off, as the "np" suffix would say
        for part in (self._index, self._faiss.try_extract_index_ivf(self._index)):
            if part is not None and hasattr(part, "do_polysemous_training"):
                part.do_polysemous_training = False
        self._page_parts: list[np.ndarray] = []
        self._page_of_row = np.zeros(0, dtype=np.int64)

    @property
    def rows(self) -> int:
        """Number of patch rows indexed."""
        return int(self._index.ntotal)

    @property
    def bytes_per_row(self) -> int:
        """Bytes the index keeps per patch row: its code plus an 8-byte row id (IVF)."""
        code = int(self._index.sa_code_size())
        return code + (8 if self._faiss.try_extract_index_ivf(self._index) is not None else 0)

    @property
    def needs_training(self) -> bool:
        """Whether the index must see a sample before rows are added (IVF, PQ)."""
        return not bool(self._index.is_trained)

    def train(self, sample: np.ndarray) -> None:
        """Train the index (IVF centroids, PQ codebooks) on a sample of patch rows."""
        ivf = self._faiss.try_extract_index_ivf(self._index)
        nlist = int(ivf.nlist) if ivf is not None else 1
        wanted = min(_TRAIN_MAX, max(nlist * _TRAIN_PER_LIST, 10_000))
        if len(sample) > wanted:
            pick = np.random.default_rng(0).choice(len(sample), wanted, replace=False)
            sample = sample[np.sort(pick)]
        self._index.train(np.ascontiguousarray(sample, dtype=np.float32))

    def add(self, rows: np.ndarray, page_of_rows: np.ndarray) -> None:
        """Index patch rows (in row order, after those already indexed) and their page slots.

        An untrained index is first trained on these rows.
        """
        if self.needs_training:
            self.train(rows)
        for start in range(0, len(rows), _ADD_CHUNK):
            chunk = np.ascontiguousarray(rows[start : start + _ADD_CHUNK], dtype=np.float32)
            self._index.add(chunk)
        self._page_parts.append(np.asarray(page_of_rows, dtype=np.int64))

    def candidate_pages(
        self, query: np.ndarray, token_k: int, max_candidates: int | None = None
    ) -> np.ndarray:
        """The page slots holding one of each query token's ``token_k`` nearest patches.

        With ``max_candidates``, only that many are kept: the pages with the best
        *approximate* MaxSim, summed over query tokens from the retrieved patches alone (a
        token that retrieved none of a page's patches counts its ``token_k``-th similarity,
        an upper bound of what it would add). Exact MaxSim then scores those few pages, so
        the cost per query does not grow with the number of candidates found.

        Returns:
            Unique page slots (``int64``), best approximate score first.
        """
        if not self.rows:
            return np.zeros(0, dtype=np.int64)
        ivf = self._faiss.try_extract_index_ivf(self._index)
        if ivf is not None:
            ivf.nprobe = self.nprobe
        sims, hits = self._index.search(
            np.ascontiguousarray(query, dtype=np.float32), min(token_k, self.rows)
        )
        if self._page_parts:  # joined once per batch of adds, not once per add
            self._page_of_row = np.concatenate([self._page_of_row, *self._page_parts])
            self._page_parts = []
        page_hits = np.where(hits >= 0, self._page_of_row[np.maximum(hits, 0)], -1)
        return rank_candidate_pages(sims, page_hits, max_candidates)


def rank_candidate_pages(
    sims: np.ndarray, page_hits: np.ndarray, max_candidates: int | None = None
) -> np.ndarray:
    """The pages of the patches each query token retrieved, best approximate MaxSim first.

    Args:
        sims: ``(tokens, token_k)`` similarities of the retrieved patches, best first.
        page_hits: ``(tokens, token_k)`` page number of each retrieved patch (``-1``: none).
        max_candidates: Pages kept (``None``: all); see :meth:`PatchIndex.candidate_pages`.

    Returns:
        Unique page numbers (``int64``); with ``max_candidates``, best approximate score first.

    Example:
        .. code-block:: python

            import numpy as np
            from langchain_image_embeddings.vectorstores.multivector import rank_candidate_pages

            rank_candidate_pages(np.array([[0.9, 0.2]]), np.array([[4, 7]]), 1)   # array([4])
    """
    found = page_hits >= 0
    pages, inverse = np.unique(page_hits[found], return_inverse=True)
    if max_candidates is None or len(pages) <= max_candidates:
        return pages
    tokens = np.nonzero(found)[0]
    floor = np.where(found, sims, np.inf).min(axis=1)  # each token's k-th similarity
    floor = np.where(np.isfinite(floor), floor, 0.0).astype(np.float32)
    best = np.repeat(floor[:, None], len(pages), axis=1)
    np.maximum.at(best, (tokens, inverse), sims[found])
    approx = best.sum(axis=0)
    keep = np.argpartition(-approx, max_candidates - 1)[:max_candidates]
    return pages[keep[np.argsort(-approx[keep], kind="stable")]]
