"""Retrieval metrics of one ranked result list, and their means over queries.

Every metric reads the first ``k`` results of a query as a list of booleans (is result
``i`` relevant?) and the number of relevant items the corpus holds for it:

* ``recall@k`` (hit rate): 1 if a relevant item is among the first ``k`` results, else 0
  (the R@k of CLIP-benchmark and of most image-retrieval papers; LlamaIndex's "hit rate").
* ``MRR`` (at 10): ``1 / rank`` of the first relevant result, 0 if none is in the first 10.
* ``nDCG@10`` with binary relevance: ``DCG = sum(rel_i / log2(i + 1))`` over ranks ``i =
  1..10``, divided by the DCG of an ideal ranking (every relevant item first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["CUTOFF", "RECALL_KS", "mean_metrics", "query_metrics"]

#: The ``k`` of recall@k.
RECALL_KS: tuple[int, ...] = (1, 5, 10)
#: How many results MRR and nDCG read.
CUTOFF = 10


def query_metrics(hits: Sequence[bool], n_relevant: int) -> dict[str, float]:
    """recall@1/5/10, MRR and nDCG@10 of one query.

    Args:
        hits: Per result, best first: whether it is relevant (only the first 10 are read).
        n_relevant: How many relevant items the corpus holds for this query (at least 1).

    Example:
        >>> query_metrics([False, True, False], n_relevant=1)["MRR"]
        0.5
    """
    if n_relevant < 1:
        raise ValueError("a query needs at least one relevant item")
    top = [bool(h) for h in hits[:CUTOFF]]
    metrics = {f"recall@{k}": float(any(top[:k])) for k in RECALL_KS}
    first = next((rank for rank, hit in enumerate(top, start=1) if hit), None)
    metrics["MRR"] = 0.0 if first is None else 1.0 / first
    dcg = sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(top, start=1) if hit)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(n_relevant, CUTOFF) + 1))
    metrics["nDCG@10"] = dcg / ideal
    return metrics


def mean_metrics(per_query: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over queries (``{}`` for no query)."""
    rows = list(per_query)
    if not rows:
        return {}
    return {name: sum(r[name] for r in rows) / len(rows) for name in rows[0]}
