"""Late-interaction page search: recall of the candidate stage, latency, bytes per page, pooling.

Synthetic, clustered multi-vector data shaped like ColPali pages (``--pages`` x ``--patches``
patch vectors of dimension ``--dim``, default 10,000 x 1,024 x 128):

* 2,048 topic centres on the unit sphere, plus one *background* centre (white margin);
* a page draws 8 topics; a quarter of its patches are background, the rest are its topics'
  centres plus Gaussian noise (standard deviation 0.08 per dimension, noise norm ~0.9), then
  normalised and stored as ``float16`` (what ``MultiVectorImageStore`` stores);
* a query (``--queries``, default 50) picks a target page and makes 32 tokens, each a random
  non-background patch of that page plus the same noise, normalised.

Every page is generated from its own seed in chunks and written to a memory-mapped
``float16`` file (2.6 GB at the default size, in ``--workdir``): the process never holds all
patches in memory. While the file is written, the brute force (exact MaxSim of every query
against every page) is computed chunk by chunk: the ground truth.

Candidate stage: the package's :class:`PatchIndex` (default ``IVF1024,PQ32``: 32-byte codes,
trained on a sample) over every patch; each query token retrieves ``--token-k`` patches, the
pages are ranked by approximate MaxSim from those hits and the best ``--max-candidates`` are
re-scored exactly with :func:`maxsim_scores` from the memory map - the same two stages as
``MultiVectorImageStore.search_by_tokens``. Reported: recall@10 (final top 10 against the
brute-force top 10), the share of true top-10 pages among the candidates, latency per query
(one query at a time, both stages) and bytes per page (float16 rows + index codes).

Token pooling (``--pool-pages`` pages, default 300, from the same generator): each page's
patches pooled with :func:`pool_tokens` at factors 2, 3 and 4; recall@10 of exact MaxSim over
the pooled pages against the brute force over the unpooled ones, and bytes per page.

Usage::

    python benchmarks/late.py                          # full: 10,000 x 1,024 (~10 min, 2 cores)
    python benchmarks/late.py --pages 1000 --nlist 256 # quick check (~1 min)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from langchain_image_embeddings.vectorstores.multivector import (
    PatchIndex,
    maxsim_scores,
    pool_tokens,
)

TOPICS = 2048
TOPICS_PER_PAGE = 8
BACKGROUND_SHARE = 0.25
NOISE = 0.08
QUERY_TOKENS = 32


def centres(dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0])
    c = rng.normal(size=(TOPICS + 1, dim))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def page(i: int, patches: int, topics: np.ndarray, seed: int) -> np.ndarray:
    """Page ``i``'s patch vectors (float16 unit rows), the same on every call."""
    rng = np.random.default_rng([seed, 1, i])
    own = rng.choice(np.arange(1, TOPICS + 1), TOPICS_PER_PAGE, replace=False)
    which = np.where(
        rng.random(patches) < BACKGROUND_SHARE, 0, own[rng.integers(0, TOPICS_PER_PAGE, patches)]
    )
    rows = topics[which] + NOISE * rng.normal(size=(patches, topics.shape[1]))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float16)


def queries(
    n: int, pages: int, patches: int, topics: np.ndarray, seed: int
) -> tuple[np.ndarray, list[int]]:
    """``n`` queries of ``QUERY_TOKENS`` tokens, each made from one target page."""
    rng = np.random.default_rng([seed, 2])
    targets = [int(t) for t in rng.integers(0, pages, n)]
    out = np.empty((n, QUERY_TOKENS, topics.shape[1]), dtype=np.float32)
    for q, t in enumerate(targets):
        rows = page(t, patches, topics, seed).astype(np.float32)
        content = rows[np.abs(rows @ topics[0]) < 0.7]  # not background
        pick = content[rng.integers(0, len(content), QUERY_TOKENS)]
        tokens = pick + NOISE * rng.normal(size=pick.shape)
        out[q] = tokens / np.linalg.norm(tokens, axis=1, keepdims=True)
    return out, targets


def build(args: argparse.Namespace, path: Path, qs: np.ndarray, topics: np.ndarray) -> np.ndarray:
    """Write every page to the memory map; return the brute-force scores (queries x pages)."""
    rows = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float16, shape=(args.pages * args.patches, args.dim)
    )
    flat = qs.reshape(-1, args.dim)
    truth = np.empty((len(qs), args.pages), dtype=np.float32)
    chunk = max(1, (1 << 16) // args.patches)  # pages per block: 65,536 rows
    for start in range(0, args.pages, chunk):
        stop = min(args.pages, start + chunk)
        block = np.concatenate(
            [page(i, args.patches, topics, args.seed) for i in range(start, stop)]
        )
        rows[start * args.patches : stop * args.patches] = block
        sims = flat @ block.astype(np.float32).T  # (queries*tokens, rows)
        best = sims.reshape(len(flat), stop - start, args.patches).max(axis=2)
        truth[:, start:stop] = best.reshape(len(qs), QUERY_TOKENS, stop - start).sum(axis=1)
    rows.flush()
    return truth


def recall_at_10(found: list[np.ndarray], truth: np.ndarray) -> float:
    hits = [
        len(set(f[:10].tolist()) & set(np.argsort(-t)[:10].tolist()))
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits)) / 10


def candidate_stage(
    args: argparse.Namespace, rows: np.ndarray, qs: np.ndarray, truth: np.ndarray
) -> dict[str, Any]:
    t0 = time.perf_counter()
    index = PatchIndex(args.dim, args.index, nprobe=args.nprobe)
    rng = np.random.default_rng(args.seed)
    sample_pages = rng.choice(args.pages, min(args.pages, 64), replace=False)
    sample = np.concatenate(
        [rows[p * args.patches : (p + 1) * args.patches] for p in np.sort(sample_pages)]
    )
    index.train(sample.astype(np.float32))
    trained = time.perf_counter()
    step = 1 << 18
    page_of_row = np.repeat(np.arange(args.pages), args.patches)
    for start in range(0, len(rows), step):
        index.add(
            np.asarray(rows[start : start + step], dtype=np.float32),
            page_of_row[start : start + step],
        )
    added = time.perf_counter()
    starts = np.arange(args.pages) * args.patches
    found, cand_share, cand_counts, t_cand, t_exact = [], [], [], [], []
    for q, query in enumerate(qs):
        a = time.perf_counter()
        cands = index.candidate_pages(query, args.token_k, args.max_candidates)
        b = time.perf_counter()
        scores = maxsim_scores(query, rows, starts[cands].tolist(), [args.patches] * len(cands))
        order = cands[np.argsort(-scores, kind="stable")]
        c = time.perf_counter()
        found.append(order)
        top = set(np.argsort(-truth[q])[:10].tolist())
        cand_share.append(len(top & set(cands.tolist())) / 10)
        cand_counts.append(len(cands))
        t_cand.append(b - a)
        t_exact.append(c - b)
    total = np.array(t_cand) + np.array(t_exact)
    return {
        "index": args.index,
        "nprobe": args.nprobe,
        "token_k": args.token_k,
        "max_candidates": args.max_candidates,
        "recall@10": recall_at_10(found, truth),
        "top10_in_candidates": float(np.mean(cand_share)),
        "candidates_per_query": float(np.mean(cand_counts)),
        "latency_ms_mean": 1000 * float(total.mean()),
        "latency_ms_p95": 1000 * float(np.percentile(total, 95)),
        "candidate_stage_ms_mean": 1000 * float(np.mean(t_cand)),
        "exact_stage_ms_mean": 1000 * float(np.mean(t_exact)),
        "train_s": trained - t0,
        "add_s": added - trained,
        "bytes_per_page_rows_fp16": 2 * args.dim * args.patches,
        "bytes_per_page_index": index.bytes_per_row * args.patches,
    }


def pooling(args: argparse.Namespace, topics: np.ndarray) -> list[dict[str, Any]]:
    n = args.pool_pages
    pages = [page(i, args.patches, topics, args.seed + 1).astype(np.float32) for i in range(n)]
    qs, _ = queries(args.queries, n, args.patches, topics, args.seed + 1)
    truth = np.array([[float((q @ p.T).max(axis=1).sum()) for p in pages] for q in qs])
    out = []
    for factor in (1, 2, 3, 4):
        t0 = time.perf_counter()
        pooled = [pool_tokens(p, factor) for p in pages]
        seconds = time.perf_counter() - t0
        rows = np.concatenate(pooled).astype(np.float16)
        counts = [len(p) for p in pooled]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
        found = [np.argsort(-maxsim_scores(q, rows, starts, counts), kind="stable") for q in qs]
        out.append(
            {
                "pool_factor": factor,
                "recall@10_vs_unpooled_brute_force": recall_at_10(found, truth),
                "top1_agrees": float(
                    np.mean([f[0] == np.argmax(t) for f, t in zip(found, truth, strict=True)])
                ),
                "vectors_per_page": float(np.mean(counts)),
                "bytes_per_page_fp16": 2 * args.dim * float(np.mean(counts)),
                "pool_ms_per_page": 1000 * seconds / n,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--patches", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--index", default=None, help="FAISS factory (default IVF{nlist},PQ32)")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--token-k", type=int, default=64)
    parser.add_argument("--max-candidates", type=int, default=256)
    parser.add_argument("--pool-pages", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-pooling", action="store_true")
    args = parser.parse_args()
    args.index = args.index or f"IVF{args.nlist},PQ32"
    topics = centres(args.dim, args.seed)
    report: dict[str, Any] = {
        "pages": args.pages,
        "patches": args.patches,
        "dim": args.dim,
        "queries": args.queries,
    }
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        qs, _ = queries(args.queries, args.pages, args.patches, topics, args.seed)
        t0 = time.perf_counter()
        truth = build(args, Path(tmp) / "rows.npy", qs, topics)
        report["generate_and_brute_force_s"] = time.perf_counter() - t0
        report["brute_force_ms_per_query"] = (
            1000 * report["generate_and_brute_force_s"] / args.queries
        )
        rows = np.load(Path(tmp) / "rows.npy", mmap_mode="r")
        report["candidates"] = candidate_stage(args, rows, qs, truth)
        del rows
    if not args.skip_pooling:
        report["pooling"] = pooling(args, topics)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
