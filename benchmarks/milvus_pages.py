"""Late-interaction pages on Milvus Lite next to the FAISS page store: recall, latency, bytes.

Synthetic clustered pages (``--pages`` x ``--patches`` unit vectors of dimension ``--dim``:
each page draws 4 of 256 topic centres, a quarter of its patches are one shared background
centre, the rest a topic centre plus Gaussian noise) and ``--queries`` queries of 16 tokens,
each a noisy copy of a random non-background patch of one target page. Ground truth: exact
MaxSim of every query against every page.

Both stores get the same pages and the same search settings (``--token-k``,
``--max-candidates``): :class:`MilvusMultiVectorStore` on a Milvus Lite file in a temporary
folder (one search call for all query tokens, then the candidates' patches read back) and
:class:`MultiVectorImageStore` in memory (FAISS ``SQfp16`` candidate index, float16 rows).
Reported per store: write time, recall@10 against the brute force, median latency per query
(both stages, one query at a time, queries run alternately on the two stores so machine load
hits both alike), and bytes of patch vectors per page.

Usage::

    python benchmarks/milvus_pages.py                       # 200 pages x 128 patches x 128
    python benchmarks/milvus_pages.py --pages 500 --queries 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from langchain_image_embeddings.vectorstores import MilvusMultiVectorStore, MultiVectorImageStore
from langchain_image_embeddings.vectorstores.multivector import maxsim


def unit(rows: np.ndarray) -> np.ndarray:
    out: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return out


def make_pages(n: int, patches: int, dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    topics = unit(rng.normal(size=(256, dim)))
    background = unit(rng.normal(size=(1, dim)))[0]
    pages = []
    for _ in range(n):
        picked = topics[rng.choice(256, 4, replace=False)]
        centre = picked[rng.integers(0, 4, size=patches)]
        centre[: patches // 4] = background
        pages.append(unit(centre + 0.08 * rng.normal(size=(patches, dim))))
    return pages


def make_queries(pages: list[np.ndarray], n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        page = pages[int(rng.integers(len(pages)))]
        rows = page[rng.integers(len(page) // 4, len(page), size=16)]
        out.append(unit(rows + 0.08 * rng.normal(size=rows.shape)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--patches", type=int, default=128)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--token-k", type=int, default=64)
    parser.add_argument("--max-candidates", type=int, default=64)
    args = parser.parse_args()

    pages = make_pages(args.pages, args.patches, args.dim)
    queries = make_queries(pages, args.queries)
    ids = [f"p{i}" for i in range(len(pages))]
    docs = [Document(page_content=f"page{i}.png") for i in range(len(pages))]
    truth = [
        {ids[i] for i in np.argsort(-np.array([maxsim(q, p) for p in pages]))[:10]} for q in queries
    ]
    results: dict[str, Any] = {"args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        milvus = MilvusMultiVectorStore.connect(
            str(Path(tmp) / "pages.db"),
            None,
            collection_name="bench",
            token_k=args.token_k,
            max_candidates=args.max_candidates,
        )
        faiss = MultiVectorImageStore(
            None, token_k=args.token_k, max_candidates=args.max_candidates
        )
        stores: dict[str, Any] = {"milvus_lite": milvus, "faiss": faiss}
        for name, store in stores.items():
            start = time.perf_counter()
            for begin in range(0, len(pages), 50):
                store.add_vectors(
                    ids[begin : begin + 50], pages[begin : begin + 50], docs[begin : begin + 50]
                )
            if name == "milvus_lite":
                milvus.flush()
            store.search_by_tokens(queries[0], k=10)  # builds the FAISS index; warms Milvus
            results[name] = {"write_s": round(time.perf_counter() - start, 2)}
        latencies: dict[str, list[float]] = {name: [] for name in stores}
        found = dict.fromkeys(stores, 0)
        for query, true in zip(queries, truth, strict=True):
            for name, store in stores.items():
                start = time.perf_counter()
                hits = store.search_by_tokens(query, k=10)
                latencies[name].append(time.perf_counter() - start)
                found[name] += len(true & {d.id for d, _ in hits})
        for name, store in stores.items():
            results[name].update(
                recall_at_10=round(found[name] / (10 * len(queries)), 3),
                median_latency_s=round(statistics.median(latencies[name]), 3),
                bytes_per_page=store.bytes_per_page(),
            )
        results["latency_ratio_milvus_over_faiss"] = round(
            results["milvus_lite"]["median_latency_s"] / results["faiss"]["median_latency_s"], 1
        )
        milvus.drop()
        milvus.close()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
