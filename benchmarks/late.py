"""Late-interaction page search: recall of the candidate stage, latency, bytes per page, pooling.

Synthetic, clustered multi-vector data shaped like ColPali pages (``--pages`` x ``--patches``
patch vectors of dimension ``--dim``, default 10,000 x 1,024 x 128):

* 2,048 topic centres on the unit sphere, plus one *background* centre (white margin);
* a page draws 8 topics; a quarter of its patches are background, the rest are its topics'
  centres plus Gaussian noise (standard deviation 0.08 per dimension, noise norm ~0.9), then
  normalised and stored as ``float16`` (what ``MultiVectorImageStore`` stores);
* a query (``--queries``, default 30) picks a target page and makes 32 tokens, each a random
  non-background patch of that page plus the same noise, normalised.

Every page is generated from its own seed (``float32`` arithmetic) in blocks of 64 pages and
written straight into a saved :class:`MultiVectorImageStore` folder (the store's own layout:
a memory-mapped ``float16`` patch file of 2.6 GB at the default size, the pages' JSON and
the manifest, in ``--workdir``): the process never holds all patches in memory and the
rows are not copied again. While a block is in memory the brute force (exact MaxSim of
every query against every page of the block) is one ``float32`` matrix product of all query
tokens against all the block's patches and a per-page max: the ground truth. Its time is
measured on its own (``brute_force_ms_per_query``).

The store is then opened from that folder with ``patch_index="IVF{nlist},PQ32"``
(``nprobe`` 16, ``token_k`` 64, ``max_candidates`` 256) and **its own search path** is what
is measured: the first search builds the patch index (trained on a 65,536-patch sample of
the store's rows, then every row added; ``index_build_s``), then each query is one
``store.search_by_tokens(query, k=10)`` call (candidate stage + exact MaxSim re-scoring of
the candidates from the memory-mapped rows; ``latency_ms``). The two stages are also timed
apart (the index's ``candidate_pages``, then ``maxsim_scores`` over those candidates).
Reported: recall@10 (the store's top 10 against the brute-force top 10), the share of true
top-10 pages among the candidates, candidates per query, bytes per page (float16 rows +
index codes), wall and CPU seconds per phase, and the load average (the machine is shared).

Token pooling (``--pool-pages`` pages, default 300, from the same generator): each page's
patches pooled with :func:`pool_tokens` at factors 2, 3 and 4; recall@10 of exact MaxSim over
the pooled pages against the brute force over the unpooled ones, and bytes per page.

Usage::

    python benchmarks/late.py                           # full: 10,000 x 1,024 (2 cores: ~15 min)
    python benchmarks/late.py --pages 1000 --nlist 256  # quick check (~1 min)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from langchain_image_embeddings.vectorstores.multivector import (
    MultiVectorImageStore,
    maxsim_scores,
    pool_tokens,
)

TOPICS = 2048
TOPICS_PER_PAGE = 8
BACKGROUND_SHARE = 0.25
NOISE = 0.08
QUERY_TOKENS = 32
BLOCK_PAGES = 64
#: The store's saved layout (vectorstores/multivector/_files.py), written in place.
STORE_FORMAT = {"format": "langchain-image-embeddings/multivector", "version": 1}


class Phases:
    """Wall and CPU seconds and the 1-minute load average per phase of the run."""

    def __init__(self) -> None:
        self.report: dict[str, dict[str, float]] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - wall, time.process_time() - cpu)

    def note(self, what: str) -> None:
        """A progress line on stderr (a long run shows where it is)."""
        print(f"[late.py] {what}; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        print(f"[late.py] phases so far: {json.dumps(self.report)}", file=sys.stderr, flush=True)

    def add(self, name: str, wall: float, cpu: float) -> None:
        entry = self.report.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
        entry["wall_s"] = round(entry["wall_s"] + wall, 2)
        entry["cpu_s"] = round(entry["cpu_s"] + cpu, 2)
        entry["load_average_1min_after"] = round(os.getloadavg()[0], 2)


def centres(dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0])
    c = rng.normal(size=(TOPICS + 1, dim))
    return (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32)


def page(i: int, patches: int, topics: np.ndarray, seed: int) -> np.ndarray:
    """Page ``i``'s patch vectors (float16 unit rows), the same on every call."""
    rng = np.random.default_rng([seed, 1, i])
    own = rng.choice(np.arange(1, TOPICS + 1), TOPICS_PER_PAGE, replace=False)
    which = np.where(
        rng.random(patches) < BACKGROUND_SHARE, 0, own[rng.integers(0, TOPICS_PER_PAGE, patches)]
    )
    rows = rng.standard_normal((patches, topics.shape[1]), dtype=np.float32)
    rows *= NOISE
    rows += topics[which]
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


def page_id(i: int) -> str:
    return f"page-{i:06d}"


def build(
    args: argparse.Namespace, folder: Path, qs: np.ndarray, topics: np.ndarray, phases: Phases
) -> np.ndarray:
    """Write every page into a saved store in ``folder``; return the brute-force scores
    (queries x pages)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.lib.format.open_memmap(
        folder / "patches-bench.npy",
        mode="w+",
        dtype=np.float16,
        shape=(args.pages * args.patches, args.dim),
    )
    flat = qs.reshape(-1, args.dim)  # every token of every query: one matrix product per block
    truth = np.empty((len(qs), args.pages), dtype=np.float32)
    for start in range(0, args.pages, BLOCK_PAGES):
        stop = min(args.pages, start + BLOCK_PAGES)
        with phases("generate_pages"):
            block = np.concatenate(
                [page(i, args.patches, topics, args.seed) for i in range(start, stop)]
            )
            rows[start * args.patches : stop * args.patches] = block
        with phases("brute_force"):
            sims = flat @ block.astype(np.float32).T  # (queries x tokens, block rows)
            bounds = np.arange(0, len(block), args.patches)
            best = np.maximum.reduceat(sims, bounds, axis=1)  # (queries x tokens, pages)
            truth[:, start:stop] = best.reshape(len(qs), QUERY_TOKENS, stop - start).sum(axis=1)
    with phases("generate_pages"):
        rows.flush()
        del rows
        pages = [
            {
                "id": page_id(i),
                "page_content": f"synthetic.pdf#page={i + 1}",
                "metadata": {"page": i + 1},
                "start": i * args.patches,
                "count": args.patches,
            }
            for i in range(args.pages)
        ]
        (folder / "pages-bench.json").write_text(json.dumps(pages), encoding="utf-8")
        manifest = {
            **STORE_FORMAT,
            "dim": args.dim,
            "model": {"model_id": "synthetic"},
            "pool_factor": 1,
            "patches": "patches-bench.npy",
            "pages": "pages-bench.json",
        }
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return truth


def recall_at_10(found: list[np.ndarray], truth: np.ndarray) -> float:
    hits = [
        len(set(f[:10].tolist()) & set(np.argsort(-t)[:10].tolist()))
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits)) / 10


def search_stage(
    args: argparse.Namespace, folder: Path, qs: np.ndarray, truth: np.ndarray, phases: Phases
) -> dict[str, Any]:
    """The store opened from ``folder``, searched with its own ``search_by_tokens``."""
    store = MultiVectorImageStore(
        None,
        folder,
        patch_index=args.index,
        nprobe=args.nprobe,
        token_k=args.token_k,
        max_candidates=args.max_candidates,
    )
    with phases("index_build"):
        # what the store's first search does (train on a sample of its rows, add them all)
        index = store._patch_index()
    phases.note("patch index built")
    slot_of_id = {page_id(i): i for i in range(args.pages)}
    found, cand_share, cand_counts = [], [], []
    t_search, t_cand, t_exact = [], [], []
    starts = np.arange(args.pages) * args.patches
    for q, query in enumerate(qs):
        with phases("store_search"):
            a = time.perf_counter()
            hits = store.search_by_tokens(query, k=10)
            t_search.append(time.perf_counter() - a)
        found.append(np.array([slot_of_id[str(doc.id)] for doc, _ in hits]))
        with phases("stages_apart"):  # the same two stages, timed one by one
            a = time.perf_counter()
            cands = index.candidate_pages(query, args.token_k, args.max_candidates)
            b = time.perf_counter()
            maxsim_scores(query, store._rows, starts[cands].tolist(), [args.patches] * len(cands))
            c = time.perf_counter()
        t_cand.append(b - a)
        t_exact.append(c - b)
        top = set(np.argsort(-truth[q])[:10].tolist())
        cand_share.append(len(top & set(cands.tolist())) / 10)
        cand_counts.append(len(cands))
    total = np.array(t_search)
    return {
        "index": args.index,
        "nprobe": args.nprobe,
        "token_k": args.token_k,
        "max_candidates": args.max_candidates,
        "recall@10": recall_at_10(found, truth),
        "top10_in_candidates": float(np.mean(cand_share)),
        "candidates_per_query": float(np.mean(cand_counts)),
        "latency_ms_mean": 1000 * float(total.mean()),
        "latency_ms_median": 1000 * float(np.median(total)),
        "latency_ms_p95": 1000 * float(np.percentile(total, 95)),
        "candidate_stage_ms_mean": 1000 * float(np.mean(t_cand)),
        "exact_stage_ms_mean": 1000 * float(np.mean(t_exact)),
        "index_build_s": phases.report["index_build"]["wall_s"],
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
    parser.add_argument("--queries", type=int, default=30)
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
    phases = Phases()
    report: dict[str, Any] = {
        "pages": args.pages,
        "patches": args.patches,
        "dim": args.dim,
        "queries": args.queries,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp) / "store"
        qs, _ = queries(args.queries, args.pages, args.patches, topics, args.seed)
        truth = build(args, folder, qs, topics, phases)
        phases.note("pages written, brute force done")
        report["brute_force_ms_per_query"] = (
            1000 * phases.report["brute_force"]["wall_s"] / args.queries
        )
        report["candidates"] = search_stage(args, folder, qs, truth, phases)
    if not args.skip_pooling:
        with phases("pooling"):
            report["pooling"] = pooling(args, topics)
    report["phases"] = phases.report
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
