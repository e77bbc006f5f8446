"""Approximate FAISS indexes for :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore`.

An index kind is ``"flat"`` (exact), ``"hnsw"`` (``HNSW32``), ``"ivf-pq"`` (OPQ rotation,
inverted lists, 4-bit fast-scan product codes), any ``faiss.index_factory`` string (inner
product), or ``"auto"``: flat while the store is small (< :data:`AUTO_FLAT_BELOW` vectors),
HNSW while its estimated memory fits the budget, IVF-PQ beyond (the autofaiss idea,
without autofaiss: it pins ``numpy < 2``).

Approximate indexes are trained on a sample of the stored vectors, then every row is added
with its row number as FAISS id. A search fetches ``k * refine`` candidates from the index
(deleted rows excluded with an ``IDSelector``) and rescores them exactly with the stored unit
vectors (read from the store's memory-mapped segments: only the candidates' rows), so scores
are exact cosines. :func:`tune` picks the smallest ``efSearch`` /
``nprobe`` whose recall@10 against exact search, measured on sampled stored vectors (or
given queries), reaches the target; the store records it in its manifest.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.vectorstores.faiss._rows import RowVectors

if TYPE_CHECKING:
    import numpy as np

KINDS = ("flat", "hnsw", "ivf-pq")
#: ``"auto"`` keeps exact search below this many vectors.
AUTO_FLAT_BELOW = 100_000
#: Approximate indexes are built only from this many vectors on (exact search before).
MIN_ANN_ROWS = 1_000
#: Candidates fetched per result and rescored exactly, by index family.
REFINE = {"hnsw": 2, "ivf": 10, "other": 10}
HNSW_M = 32
TRAIN_SAMPLE = 50_000
OPQ_ITERATIONS = 10
OPQ_TRAIN_POINTS = 10_000
TUNE_QUERIES = 200
RECALL_K = 10
_EF = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)


def default_memory_budget() -> int:
    """Half of this machine's physical memory (8 GiB where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (AttributeError, OSError, ValueError):  # pragma: no cover - non-POSIX
        return 8 << 30


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


def parse_size(size: int | str) -> int:
    """Bytes from an int or a size: ``"2GB"`` (10^9), ``"2GiB"`` or ``"2G"`` (2^30), ``"512MB"``.

    Raises:
        ValueError: Not a size, or not positive.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        value = size
    else:
        match = _SIZE.match(str(size))
        if not match or (match.group(3) and not match.group(2)):
            raise ValueError(f"memory size {size!r}: expected bytes or e.g. 2GB, 512MiB, 1.5G")
        number, unit, binary, b = match.groups()
        power = "kmgt".index(unit.lower()) + 1 if unit else 0
        base = 1024 if (binary or (unit and not b)) else 1000
        value = int(float(number) * base**power)
    if value <= 0:
        raise ValueError(f"memory size {size!r}: must be positive")
    return value


def check_kind(kind: str) -> str:
    """``kind`` if it names an index kind or ``"auto"``; a factory string is tried in FAISS.

    Raises:
        ValueError: Neither a known kind nor a factory string FAISS accepts.
    """
    if kind in KINDS or kind == "auto":
        return kind
    faiss = require("faiss", "faiss-cpu")
    try:
        faiss.index_factory(8 if "PQ" not in kind else 16, kind, faiss.METRIC_INNER_PRODUCT)
    except Exception as exc:  # faiss raises RuntimeError with its own message
        if "dimension" not in str(exc) and "not divisible" not in str(exc):
            raise ValueError(
                f"FAISS index {kind!r}: expected flat, hnsw, ivf-pq, auto or an index_factory "
                f"string ({str(exc).strip().splitlines()[-1] if str(exc).strip() else exc})"
            ) from exc
    return kind


def _pq_m(dim: int) -> int:
    """Sub-quantizers for IVF-PQ: dim/4 (4-bit codes: dim/8 bytes a vector), even."""
    for m in (dim // 4, dim // 2, dim):
        if m >= 2 and m % 2 == 0 and dim % m == 0:
            return m
    return 2 if dim % 2 == 0 else dim  # pragma: no cover - odd dimensions


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4 sqrt(n), a power of two, 16 .. 65,536."""
    target = max(16, min(65_536, 4 * int(math.sqrt(max(n, 1)))))
    return 1 << round(math.log2(target))


def factory_string(kind: str, n: int, dim: int) -> str:
    """The ``faiss.index_factory`` string of a kind for ``n`` vectors of ``dim``."""
    if kind == "flat":
        return "Flat"
    if kind == "hnsw":
        return f"HNSW{HNSW_M}"
    if kind == "ivf-pq":
        m = _pq_m(dim)
        nlist = min(nlist_for(n), max(16, n // 39))
        opq = f"OPQ{m}_{dim}," if n >= 4 * dim else ""  # the rotation needs n >> dim to train
        return f"{opq}IVF{nlist},PQ{m}x4fs"
    return kind


def estimate_memory(kind: str, n: int, dim: int) -> int:
    """Bytes an index of ``kind`` takes for ``n`` vectors (the store's own vectors not counted
    for approximate kinds)."""
    if kind == "flat":
        return n * dim * 4
    if kind == "hnsw":
        return n * (dim * 4 + HNSW_M * 2 * 4 + 16)
    if kind == "ivf-pq":
        m = _pq_m(dim)
        nlist = nlist_for(n)
        return n * (m // 2 + 8) + nlist * dim * 4 + dim * dim * 4
    return n * dim * 4


def resolve(kind: str, n: int, dim: int, memory_budget: int | None = None) -> str:
    """The concrete kind (``flat``, ``hnsw``, ``ivf-pq`` or a factory string) for ``n`` vectors."""
    if kind != "auto":
        return kind
    if n < AUTO_FLAT_BELOW:
        return "flat"
    budget = default_memory_budget() if memory_budget is None else memory_budget
    return "hnsw" if estimate_memory("hnsw", n, dim) <= budget else "ivf-pq"


def family(index: Any) -> str:
    """``"hnsw"``, ``"ivf"`` or ``"other"``: which search parameter an index takes."""
    faiss = require("faiss", "faiss-cpu")
    inner = index
    if isinstance(inner, faiss.IndexPreTransform):
        inner = faiss.downcast_index(inner.index)
    inner = faiss.downcast_index(inner)
    if hasattr(inner, "hnsw"):
        return "hnsw"
    try:
        faiss.extract_index_ivf(index)
    except Exception:
        return "other"
    return "ivf"


def as_rows(vectors: RowVectors | np.ndarray) -> RowVectors:
    """``vectors`` as :class:`RowVectors` (an array is wrapped, not copied)."""
    import numpy as np

    if isinstance(vectors, RowVectors):
        return vectors
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    rows = RowVectors(int(matrix.shape[1]))
    rows.add_part(matrix)
    return rows


def build(factory: str, vectors: RowVectors | np.ndarray, *, seed: int = 0) -> Any:
    """A trained index (inner product) holding ``vectors`` as ids ``0 .. n-1`` (streamed in
    blocks: mapped rows are read once, never all held in memory)."""
    import numpy as np

    faiss = require("faiss", "faiss-cpu")
    rows = as_rows(vectors)
    dim = int(rows.dim or 0)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    keep: list[Any] = []
    if isinstance(index, faiss.IndexPreTransform):
        for i in range(index.chain.size()):
            transform = faiss.downcast_VectorTransform(index.chain.at(i))
            if isinstance(transform, faiss.OPQMatrix):  # defaults take minutes at 512-d
                transform.niter = OPQ_ITERATIONS
                transform.max_train_points = OPQ_TRAIN_POINTS
                if "x4fs" in factory:  # train the rotation for the 4-bit codes it feeds
                    keep.append(faiss.ProductQuantizer(transform.d_out, transform.M, 4))
                    transform.pq = keep[-1]
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        n = len(rows)
        sample = (
            rows.slice(0, n)
            if n <= TRAIN_SAMPLE
            else rows.take(np.sort(rng.choice(n, TRAIN_SAMPLE, replace=False)))
        )
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    del keep
    if family(index) == "hnsw":
        faiss.downcast_index(index).hnsw.efConstruction = 80
    for _, block in rows.blocks():
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    return index


def search_params(index: Any, params: dict[str, int], sel: Any = None) -> Any:
    """FAISS search parameters for ``index`` (``efSearch`` / ``nprobe``, an optional selector)."""
    faiss = require("faiss", "faiss-cpu")
    kind = family(index)
    if kind == "hnsw":
        p: Any = faiss.SearchParametersHNSW(efSearch=int(params.get("efSearch", 64)))
    elif kind == "ivf":
        p = faiss.SearchParametersIVF(nprobe=int(params.get("nprobe", 16)))
    else:
        p = faiss.SearchParameters()
    if sel is not None:
        p.sel = sel
    return p


def refine_for(index: Any) -> int:
    """Candidates fetched per wanted result, rescored exactly."""
    return REFINE[family(index)]


def candidates(
    index: Any, queries: np.ndarray, fetch: int, params: dict[str, int], sel: Any = None
) -> np.ndarray:
    """Row numbers of up to ``fetch`` candidates per query (``-1`` pads)."""
    import numpy as np

    query = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, index.d)
    _, rows = index.search(query, int(fetch), params=search_params(index, params, sel))
    return np.asarray(rows)


def rescore(
    vectors: RowVectors | np.ndarray, query: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of candidate ``rows`` by exact inner product: (rows, scores)."""
    import numpy as np

    rows = rows[rows >= 0]
    if not len(rows):
        return rows, np.zeros(0, np.float32)
    scores = as_rows(vectors).take(rows) @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return rows[order], scores[order]


def exact_topk(
    vectors: RowVectors | np.ndarray,
    queries: np.ndarray,
    k: int,
    dead: np.ndarray | None = None,
) -> np.ndarray:
    """Row numbers of the exact top ``k`` per query, deleted rows (``dead`` mask) left out.

    The rows are scanned block by block (each block's best ``k`` kept), so mapped rows are
    read once per query batch and never all held in memory.
    """
    import numpy as np

    rows = as_rows(vectors)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), np.int64)
    best = np.zeros((len(queries), 0), np.float32)
    for first, block in rows.blocks():
        scores = queries @ np.asarray(block).T
        if dead is not None:
            scores[:, dead[first : first + len(block)]] = -np.inf
        ids = np.broadcast_to(np.arange(first, first + len(block)), scores.shape)
        if scores.shape[1] > k:
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            scores = np.take_along_axis(scores, part, axis=1)
            ids = np.take_along_axis(ids, part, axis=1)
        best = np.concatenate([best, scores], axis=1)
        best_rows = np.concatenate([best_rows, ids], axis=1)
    order = np.argsort(-best, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(best_rows, order, axis=1)


def recall_at(
    index: Any,
    vectors: RowVectors | np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    params: dict[str, int],
    sel: Any = None,
    refine: int | None = None,
    self_rows: np.ndarray | None = None,
) -> float:
    """Mean recall@k (k = ``truth.shape[1]``) of the index + exact rescoring at ``params``."""
    k = truth.shape[1]
    if not truth.size:  # no neighbour to miss (one live row held out, or none)
        return 1.0
    vectors = as_rows(vectors)
    rows = candidates(index, queries, (k + 1) * (refine or refine_for(index)), params, sel)
    hits = 0
    for n, (q, cand, true) in enumerate(zip(queries, rows, truth, strict=True)):
        found, _ = rescore(vectors, q, cand, k + 1)
        if self_rows is not None:  # a stored vector as query: its own row does not count
            found = found[found != self_rows[n]]
        hits += len(set(found[:k].tolist()) & set(true.tolist()))
    return hits / truth.size


def tune(
    index: Any,
    vectors: RowVectors | np.ndarray,
    *,
    dead: np.ndarray | None = None,
    queries: np.ndarray | None = None,
    target: float = 0.95,
    k: int = RECALL_K,
    n_queries: int = TUNE_QUERIES,
    seed: int = 0,
) -> dict[str, Any]:
    """Pick the cheapest search parameter whose recall@k reaches ``target``.

    Queries are ``queries`` or ``n_queries`` stored (live) vectors sampled at random (each
    then scored as a held-out query: its own row is left out of both result lists); the
    truth is exact search over the live rows. Returns what the manifest records:
    ``params``, ``recall``, ``recall_k``, ``recall_target``, ``tuning_queries``,
    ``refine`` and ``tuning_seconds``.
    """
    import numpy as np

    faiss = require("faiss", "faiss-cpu")
    started = time.perf_counter()
    vectors = as_rows(vectors)
    live = np.flatnonzero(~dead) if dead is not None else np.arange(len(vectors))
    self_rows = None
    if queries is None:  # stored vectors, scored as held-out: their own row left out
        rng = np.random.default_rng(seed)
        self_rows = np.sort(rng.choice(live, min(n_queries, len(live)), replace=False))
        queries = vectors.take(self_rows)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(0, min(k, len(live) - (self_rows is not None)))
    if k == 0 or not len(queries):  # one live row held out, or none: nothing to miss
        truth = np.zeros((len(queries), 0), np.int64)
    else:
        truth = exact_topk(vectors, queries, k + 1, dead)
        if self_rows is not None:
            truth = np.stack([t[t != r][:k] for t, r in zip(truth, self_rows, strict=True)])
        else:
            truth = truth[:, :k]
    sel = None
    if dead is not None and dead.any():
        sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.flatnonzero(dead).astype(np.int64)))
    kind = family(index)
    if kind == "hnsw":
        grid = [{"efSearch": ef} for ef in _EF]
    elif kind == "ivf":
        nlist = int(faiss.extract_index_ivf(index).nlist)
        grid = [
            {"nprobe": p}
            for p in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048)
            if p < nlist
        ]
        grid.append({"nprobe": nlist})
    else:
        grid = [{}]
    refines = (refine_for(index),) if kind == "hnsw" else (refine_for(index), 25, 50, 100)
    params: dict[str, int] = grid[-1]
    refine = refines[-1]
    recall = 0.0
    for refine in refines:  # coarse codes need more candidates rescored, not just more lists
        for candidate in grid:
            recall = recall_at(index, vectors, queries, truth, candidate, sel, refine, self_rows)
            params = candidate
            if recall >= target:
                break
        if recall >= target:
            break
    return {
        "params": params,
        "recall": round(float(recall), 4),
        "recall_k": int(k),
        "recall_target": float(target),
        "tuning_queries": len(queries),
        "refine": int(refine),
        "tuning_seconds": round(time.perf_counter() - started, 3),
    }
