"""The FAISS store's id maps: heap bytes a row and lookup times, before and after issue 26.

*Before* is what the store held per row until then: a ``list`` (row -> id) and a ``dict``
(id -> row), filled as a load filled them; *after* is
:class:`~langchain_image_embeddings.vectorstores.faiss._ids.RowIds` filled by ``add_saved``
(a saved store's rows, packed). For each kind of id (``--ids``):

- ``bytes_per_row``: ``tracemalloc``'s traced memory after the build minus before, per row
  (``peak_per_row``: the peak while building); the ids are generated on the fly, so a
  structure's bytes include the ``str`` objects it keeps;
- ``ids_to_rows_ms``: a batch of 10,000 ids (9,000 present, 1,000 absent) to rows: the
  dict's ``get`` per id against one ``RowIds.rows_of`` call; ``one_by_one_ms``: the same
  10,000 through ``RowIds.row`` one call each (the store's single lookups);
- ``rows_to_ids_ms``: 1,000 search results of k = 10 random rows to their ids, with the
  "still live?" check the store makes for each hit.

Times are the best of ``--repeat`` runs. Run::

    PYTHONPATH=. python benchmarks/row_ids.py --n 1000000

Prints one JSON line per kind of id. Timings from a busy shared machine vary run to run:
compare the ratios measured side by side in one run.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from langchain_image_embeddings.vectorstores.faiss._ids import RowIds


def make_id(kind: str, i: int) -> str:
    """Row ``i``'s id: a content id (64 hex digits), a UUID, or a path-like text id."""
    if kind == "hex":
        return hashlib.sha256(i.to_bytes(8, "little")).hexdigest()
    if kind == "uuid":
        return str(uuid.UUID(int=random.Random(i).getrandbits(128)))
    return f"/data/photos/2026/{i // 1000:04d}/IMG_{i:07d}-é.jpg"


def ids(kind: str, n: int) -> Iterator[str]:
    return (make_id(kind, i) for i in range(n))


def build_before(kind: str, n: int) -> tuple[list[str | None], dict[str, int]]:
    rows: list[str | None] = []
    by_id: dict[str, int] = {}
    for r, rid in enumerate(ids(kind, n)):  # as _add_saved_ids filled them
        rows.append(rid)
        by_id[rid] = r
    return rows, by_id


def build_after(kind: str, n: int) -> RowIds:
    packed = RowIds()
    packed.add_saved(ids(kind, n))
    return packed


def traced(build: Callable[[], Any], n: int) -> tuple[Any, float, float]:
    """``build()``, its retained and peak traced bytes a row."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    built = build()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return built, (held - base) / n, (peak - base) / n


def best_ms(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return round(1000 * min(times), 3)


def measure(kind: str, n: int, repeat: int) -> dict[str, Any]:
    build_before(kind, 1_000)  # modules imported on first use are not the structures' bytes
    build_after(kind, 1_000).rows_of([make_id(kind, k) for k in range(100)])
    (rows, by_id), before_row, before_peak = traced(lambda: build_before(kind, n), n)
    packed, after_row, after_peak = traced(lambda: build_after(kind, n), n)
    rng = random.Random(7)
    batch = [make_id(kind, rng.randrange(n)) for _ in range(9_000)]
    batch += [make_id(kind, n + k) for k in range(1_000)]  # absent
    rng.shuffle(batch)
    assert [by_id.get(i) for i in batch] == packed.rows_of(batch)
    hits = [[rng.randrange(n) for _ in range(10)] for _ in range(1_000)]
    assert [[rows[r] for r in h] for h in hits] == [packed.ids_of(h) for h in hits]
    return {
        "ids": kind,
        "rows": n,
        "example_id": make_id(kind, 0),
        "bytes_per_row": {"before": round(before_row, 1), "after": round(after_row, 1)},
        "peak_per_row": {"before": round(before_peak, 1), "after": round(after_peak, 1)},
        "ids_to_rows_ms": {
            "before": best_ms(lambda: [by_id.get(i) for i in batch], repeat),
            "after": best_ms(lambda: packed.rows_of(batch), repeat),
            "one_by_one_ms": best_ms(lambda: [packed.row(i) for i in batch], repeat),
        },
        "rows_to_ids_ms": {
            "before": best_ms(
                lambda: [[rows[r] for r in h if rows[r] is not None] for h in hits], repeat
            ),
            "after": best_ms(
                lambda: [[packed[r] for r in h if packed.is_live(r)] for h in hits], repeat
            ),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows")
    parser.add_argument("--ids", nargs="+", default=["hex", "uuid", "path"])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for kind in args.ids:
        print(json.dumps(measure(kind, args.n, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
