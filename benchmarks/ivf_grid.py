"""Where an IVF index's recall comes from on the hard set: recall@10 over nprobe x refine.

The store's tuner stops at the cheapest point reaching its target; this script measures the
whole grid for given factory strings, so one can see whether the lists (``nprobe``) or the
codes (``refine``: candidates per result rescored exactly) limit recall. The data: the first
``--n`` rows of the cached hard set of ``benchmarks/ann.py`` (``--set-n`` x ``--dim``,
generated there on first use), its 200 held-out perturbed queries, the exact top-10 over
those ``--n`` rows as truth. Each point: recall@10, time per query of one batched search of
all queries, and of 20 single-query searches (one core count, a shared machine: compare rows).

Usage::

    python benchmarks/ivf_grid.py --n 200000 "OPQ128_512,IVF1024,PQ128np"
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ann import flat_topk, hard_cached

from langchain_image_embeddings.vectorstores.faiss import _index as ann


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("factories", nargs="+", help="faiss index_factory strings (IVF)")
    parser.add_argument("--n", type=int, default=200_000, help="rows of the set indexed")
    parser.add_argument("--set-n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "imgemb-hard"))
    parser.add_argument("--refine", type=int, nargs="+", default=[10, 25, 50, 100, 200, 400, 800])
    parser.add_argument(
        "--nprobe", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256, 512, 1024]
    )
    args = parser.parse_args()
    import faiss

    rows, queries, _ = hard_cached(args.set_n, args.dim, 7, 200, Path(args.cache))
    vectors = np.ascontiguousarray(rows[: args.n])
    truth = flat_topk(vectors, queries, 10)
    print(f"{args.n:,} of {args.set_n:,} x {args.dim} hard rows; load average {os.getloadavg()}")
    for factory in args.factories:
        started = time.perf_counter()
        index = ann.build(factory, vectors)
        print(f"{factory}: built in {time.perf_counter() - started:.1f} s", flush=True)
        nlist = int(faiss.extract_index_ivf(index).nlist)
        for refine in args.refine:
            for nprobe in [p for p in args.nprobe if p <= nlist]:
                params = {"nprobe": nprobe}
                t = time.perf_counter()
                found = ann.search_rescored(index, vectors, queries, 10, refine, params)
                batched = (time.perf_counter() - t) * 1000 / len(queries)
                t = time.perf_counter()
                for q in queries[:20]:
                    ann.search_rescored(index, vectors, q[None], 10, refine, params)
                single = (time.perf_counter() - t) * 1000 / 20
                hits = sum(
                    len(set(f.tolist()) & set(t.tolist()))
                    for (f, _), t in zip(found, truth, strict=True)
                )
                print(
                    f"  refine {refine:4} nprobe {nprobe:5} recall@10 {hits / truth.size:.3f} "
                    f"batched {batched:6.2f} ms/query, single {single:6.2f} ms",
                    flush=True,
                )
                if hits == truth.size:
                    break


if __name__ == "__main__":
    main()
