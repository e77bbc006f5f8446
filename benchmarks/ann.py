"""Approximate FAISS indexes and incremental saves of ``FAISSImageStore``: one run, one table.

Data sets:

* **clustered** (``--n``, default 200,000 vectors, dimension 512): 1,000 cluster centres drawn
  uniformly on the unit sphere (normalised Gaussian vectors); each vector is a centre (chosen
  uniformly) plus isotropic Gaussian noise of standard deviation ``0.04`` per dimension
  (noise norm ~0.9, so clusters overlap in their tails), then normalised. Held-out queries
  (200, never stored) come from the same process.
* **hard** (``--parts hard``, ``--hard-n`` default 100,000, ``--hard-dim`` default 256): the
  set issue 26 found the IVF-PQ plan stopping short on. ``n / 100`` centres uniform on the
  sphere; cluster sizes Zipf (cluster of rank r drawn with weight 1 / r^1.1, so a few clusters
  hold most rows); anisotropic noise (standard deviation ``0.25 / sqrt(j)`` along dimension j,
  then each cluster's noise scaled by a factor uniform in [0.5, 1.5]); everything rotated by
  one random orthogonal matrix (so the anisotropy is not axis-aligned); normalised. The 200
  held-out queries are drawn from the same process (never stored) and perturbed once more
  with N(0, 0.02) noise. Each kind is built by the store with its default recall target and
  with 0.99; the table shows the plans it tried, the recall it recorded (held-out stored
  rows) and the recall measured on the held-out queries, or the refusal. The set is written
  in chunks of 50,000 rows into ``--hard-cache`` (a ``.npy``, memory-mapped by later runs)
  with the queries' exact top-10 (a blocked faiss ``IndexFlatIP``), so 1 M x 512 (2 GB)
  needs no second copy in RAM; ``--hard-kinds`` / ``--hard-targets`` pick the rows.
* **photos**: the real Lite0 (``timm:efficientnet_lite0``, ImageNet weights) embeddings of
  the sample photos and their copies (``samples.write_sample_photos``), plus random
  augmentations of the photos (crop 35-100 % of the area, flip, brightness 0.6-1.4) to
  reach ``--photo-augment`` vectors; 100 other augmentations are the held-out queries.

For each index kind (flat, HNSW, IVF-PQ) the store is filled, the index is built and tuned by
the store itself (to recall@10 >= 0.95 on 200 sampled stored vectors), then measured on the
held-out queries at the **recorded** parameters: recall@10 against exact search, mean
single-query latency through ``similarity_search_with_score_by_vector`` and index memory (the
serialized size; flat: the vectors). Save cost: a flat store of ``--save-n`` (default
1,000,000) vectors is saved in full, 1,000 vectors are added, then the incremental save and
a forced full rewrite are timed.

Resident memory of a saved IVF-PQ store (``rss``): the clustered vectors are saved as an
IVF-PQ store; then, each in a fresh subprocess (so that nothing else is resident), the store
is opened and the 200 held-out queries are searched (k = 10), and the process reports its
resident set (``VmRSS``, split into anonymous memory and mapped file pages), its peak
(``VmHWM``) and recall@10 against exact search. The **before** case runs the package as it
was at ``--baseline-ref`` (every raw vector loaded into an ``IndexFlatIP`` beside the index;
extracted with ``git archive``), the **after** case this checkout (raw vectors
memory-mapped, only the candidates' rows read).

Usage::

    python benchmarks/ann.py                       # ~15-25 minutes on 2 cores
    python benchmarks/ann.py --n 20000 --save-n 100000 --photo-augment 300   # quick check
    python benchmarks/ann.py --parts rss           # only the memory comparison
    python benchmarks/ann.py --parts hard --hard-n 100000 --hard-dim 256   # issue 26's set
    python benchmarks/ann.py --parts hard --hard-n 1000000 --hard-dim 512 --hard-kinds ivf-pq \\
        --hard-targets 0.95 --hard-open 1000   # + RSS of the saved store, reopened
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from langchain_image_embeddings.vectorstores import FAISSImageStore
from langchain_image_embeddings.vectorstores.faiss import _index as ann


class _Encoder:
    def __init__(self, dim: int) -> None:
        self.dim = dim

    def fingerprint(self) -> dict[str, Any]:
        return {"spec": "bench:vectors", "dim": self.dim, "weights": "none"}


class VectorsOnly:
    """The parts of ``ImageEmbeddings`` a store uses when vectors are given directly."""

    model_id = "bench:vectors"
    load_options = None
    supports_text = False

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.encoder = _Encoder(dim)


def clustered(n: int, dim: int, seed: int, centres: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = np.random.default_rng(1234).standard_normal((1000, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        x = centres[rng.integers(0, len(centres), m)] + rng.normal(0, 0.04, (m, dim)).astype(
            np.float32
        )
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def hard(n: int, dim: int, seed: int, queries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """The hard set (see the module docs): ``n`` stored rows and ``queries`` held-out ones."""
    out = np.empty((n + queries, dim), np.float32)
    _hard_into(out, n, dim, seed, queries)
    return out[:n], out[n:]


def _hard_into(out: np.ndarray, n: int, dim: int, seed: int, queries: int) -> None:
    """Write the hard set into ``out`` (``n + queries`` rows; an array or a memory map) in
    chunks of 50,000 rows, so generating 1 M x 512 needs ~200 MB besides ``out``. The random
    draws are the same whatever ``out`` is, so a cached set equals the in-memory one."""
    rng = np.random.default_rng(seed)
    clusters = max(10, n // 100)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, clusters + 1) ** 1.1
    label = rng.choice(clusters, n + queries, p=weights / weights.sum())
    scales = 0.25 * np.arange(1, dim + 1, dtype=np.float32) ** -0.5
    spread = rng.uniform(0.5, 1.5, clusters).astype(np.float32)
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    for start in range(0, n + queries, 50_000):
        part = label[start : start + 50_000]
        noise = rng.standard_normal((len(part), dim)).astype(np.float32)
        x = centres[part] + noise * scales * spread[part, None]
        out[start : start + len(part)] = x @ rotation
    out[n:] += 0.02 * rng.standard_normal((queries, dim)).astype(np.float32)
    for start in range(0, n + queries, 50_000):
        block = out[start : start + 50_000]
        block /= np.linalg.norm(block, axis=1, keepdims=True)


def hard_cached(
    n: int, dim: int, seed: int, queries: int, cache: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hard set and its exact top-10, generated once into ``cache`` (``.npy`` files)
    and memory-mapped on later runs: the stored rows, the held-out queries, their truth."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = cache / f"hard-{n}x{dim}-q{queries}-s{seed}"
    data, truth_file = stem.with_suffix(".npy"), Path(f"{stem}-truth10.npy")
    if not data.exists():
        started = time.perf_counter()
        partial = Path(f"{stem}.partial.npy")
        out = np.lib.format.open_memmap(partial, "w+", np.float32, (n + queries, dim))
        _hard_into(out, n, dim, seed, queries)
        out.flush()
        del out
        partial.rename(data)
        print(f"hard: generated {data} in {time.perf_counter() - started:.1f} s")
    rows = np.load(data, mmap_mode="r")
    vectors, held = rows[:n], np.ascontiguousarray(rows[n:])
    if not truth_file.exists():
        started = time.perf_counter()
        np.save(truth_file, flat_topk(vectors, held, 10))
        print(f"hard: exact top-10 in {time.perf_counter() - started:.1f} s")
    return vectors, held, np.load(truth_file)


def flat_topk(vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 100_000) -> np.ndarray:
    """Exact top-``k`` inner-product rows of ``vectors`` for each query: a faiss
    ``IndexFlatIP`` over one block of rows at a time, merged (bounded memory at any n)."""
    import faiss

    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), block):
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors[start : start + block], dtype=np.float32))
        s, i = index.search(queries, min(k, index.ntotal))
        best_s, best_i = np.hstack([best_s, s]), np.hstack([best_i, i + start])
        order = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(best_s, order, 1)
        best_i = np.take_along_axis(best_i, order, 1)
    return best_i


def hard_table(args: argparse.Namespace) -> None:
    from langchain_image_embeddings.errors import StoreError

    vectors, queries, truth = hard_cached(
        args.hard_n, args.hard_dim, 7, args.hard_queries, Path(args.hard_cache)
    )
    print(
        f"\nhard: {args.hard_n:,} x {args.hard_dim}, Zipf-sized anisotropic rotated clusters; "
        f"{len(queries)} held-out perturbed queries; load average {_load()}"
    )
    for kind in args.hard_kinds:
        for target in args.hard_targets:
            folder = Path(tempfile.mkdtemp(prefix="imgemb-hard-store-")) if args.hard_open else None
            try:
                row = measure(
                    kind, vectors, queries, recall_target=target, truth=truth, folder=folder
                )
            except StoreError as exc:
                print(f"{kind:7} target {target}: refused: {exc}; load average {_load()}")
                continue
            params = ",".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
            print(
                f"{kind:7} target {target}: {row['factory']} {params} refine {row['refine']} "
                f"recorded {row['tuned_recall']} held-out {row['recall']:.3f} "
                f"p50 {row['p50_ms']:.2f} ms/query (mean {row['ms']:.2f}) "
                f"build {row['build_s']:.1f} s index {row['memory_mb']:.1f} MB "
                f"RSS {row['rss_mb']:.0f} MB peak {row['peak_mb']:.0f} MB "
                f"load average {_load()}; tried "
                + "; ".join(f"{t['factory']}={t['recall']}" for t in row["tried"])
            )
            sys.stdout.flush()
            if folder is not None:
                try:
                    opened_row(folder, queries, truth, args.hard_open)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)


def opened_row(folder: Path, queries: np.ndarray, truth: np.ndarray, count: int) -> None:
    """The saved store opened in a fresh process and searched ``count`` times (the held-out
    queries repeated): resident memory after open and after the queries, MiB."""
    reps = -(-count // len(queries))
    data = folder.parent / f"{folder.name}-queries.npz"
    np.savez(
        data, queries=np.tile(queries, (reps, 1))[:count], truth=np.tile(truth, (reps, 1))[:count]
    )
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-case", str(folder), str(data)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        data.unlink(missing_ok=True)
    r = json.loads(out.strip().splitlines()[-1])
    q = r["queried"]
    print(
        f"        opened in a fresh process: open {r['open_s']:.1f} s, RSS after open "
        f"{r['opened']['VmRSS']:.0f} MB, after {count} queries {q['VmRSS']:.0f} MB "
        f"(anon {q['RssAnon']:.0f}, file {q['RssFile']:.0f}; imports alone "
        f"{r['imports']['VmRSS']:.0f}), peak {q['VmHWM']:.0f} MB, {r['ms']:.2f} ms/query, "
        f"recall@10 {r['recall']:.3f}; load average {_load()}"
    )
    sys.stdout.flush()


def _load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared; timings depend on it)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fill(store: FAISSImageStore, vectors: np.ndarray, prefix: str = "v") -> None:
    for start in range(0, len(vectors), 100_000):
        ids = [f"{prefix}{i}" for i in range(start, min(start + 100_000, len(vectors)))]
        store.upsert_vectors(
            ids, vectors[start : start + len(ids)], [Document(page_content=i) for i in ids]
        )


def measure(
    kind: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    recall_target: float | None = None,
    truth: np.ndarray | None = None,
    folder: Path | None = None,
) -> dict[str, Any]:
    """Build and tune a store of ``kind``, then search the held-out ``queries`` in this
    process; with ``folder`` the store is saved there afterwards (for :func:`opened_row`)."""
    import faiss

    store = FAISSImageStore(
        VectorsOnly(vectors.shape[1]), folder, index=kind, recall_target=recall_target
    )
    fill(store, vectors)
    started = time.perf_counter()
    store.build_index()
    build = time.perf_counter() - started
    info = store.index_info
    if truth is None:
        truth = ann.exact_topk(vectors, queries, 10)
    hits, times = 0, []
    for q, true in zip(queries, truth, strict=True):
        t = time.perf_counter()
        found = store.similarity_search_with_score_by_vector(q.tolist(), 10)
        times.append(time.perf_counter() - t)
        rows = {int(str(d.id)[1:]) for d, _ in found}
        hits += len(rows & set(true.tolist()))
    index = store.backend._ann
    if index is None:
        memory = len(vectors) * vectors.shape[1] * 4
    else:  # through a file: serializing to memory would copy a 2 GB graph once more
        with tempfile.NamedTemporaryFile(suffix=".faiss") as file:
            faiss.write_index(index, file.name)
            memory = os.path.getsize(file.name)
    resident = _memory()
    if folder is not None:
        store.save()
        store.close()
    return {
        "kind": kind,
        "factory": info.get("factory"),
        "params": info.get("params", {}),
        "refine": info.get("refine", "-"),
        "tuned_recall": info.get("recall"),
        "recall": hits / truth.size,
        "ms": 1000 * sum(times) / len(queries),
        "p50_ms": 1000 * float(np.median(times)),
        "memory_mb": memory / 2**20,
        "rss_mb": resident.get("VmRSS", 0.0),
        "peak_mb": resident.get("VmHWM", 0.0),
        "build_s": build,
        "tried": info.get("plans_tried", []),
    }


def photo_vectors(total: int, queries: int, work: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageEnhance

    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.samples import sample_photos, write_sample_photos

    paths = write_sample_photos(work / "photos")
    emb = ImageEmbeddings("timm:efficientnet_lite0")
    photos = list(sample_photos().values())
    rng = np.random.default_rng(7)

    def augment(count: int) -> list[Image.Image]:
        out = []
        for _ in range(count):
            img = photos[int(rng.integers(len(photos)))]
            w, h = img.size
            frac = float(np.sqrt(rng.uniform(0.35, 1.0)))
            cw, ch = int(w * frac), int(h * frac)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = img.crop((x, y, x + cw, y + ch))
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            out.append(ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.6, 1.4))))
        return out

    stored = np.asarray(emb.embed_images([str(p) for p in paths]), np.float32)
    extra = max(0, total - len(stored))
    if extra:
        stored = np.concatenate([stored, np.asarray(emb.embed_images(augment(extra)), np.float32)])
    held_out = np.asarray(emb.embed_images(augment(queries)), np.float32)
    print(
        f"photos: {len(paths)} sample photos and copies + {extra} augmentations, dim {stored.shape[1]}"
    )
    return stored, held_out


def save_cost(n: int, dim: int, work: Path) -> dict[str, float]:
    folder = work / "save"
    store = FAISSImageStore(VectorsOnly(dim), folder)
    fill(store, clustered(n, dim, seed=3))
    t = time.perf_counter()
    store.save()
    first = time.perf_counter() - t
    fill(store, clustered(1000, dim, seed=4), prefix="new")
    t = time.perf_counter()
    store.save()
    incremental = time.perf_counter() - t
    store.full_save_below_bytes = 1 << 62  # force compaction: a full rewrite of the same store
    t = time.perf_counter()
    store.save()
    full = time.perf_counter() - t
    store.close()
    reopen_t = time.perf_counter()
    assert len(FAISSImageStore.load(folder, VectorsOnly(dim))) == n + 1000
    reopen = time.perf_counter() - reopen_t
    shutil.rmtree(folder)
    return {"first": first, "incremental": incremental, "full": full, "reopen": reopen}


REPO = Path(__file__).resolve().parents[1]
#: The last commit whose FAISS store held every raw vector in memory.
BASELINE_REF = "a093124"


def _memory() -> dict[str, float]:
    """This process's resident memory in MiB, from ``/proc/self/status`` (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def rss_case(folder: str, data: str) -> None:
    """Subprocess: open the store, run the held-out queries, print memory and recall (JSON)."""
    import faiss  # noqa: F401 - imported before measuring, as the store would import it

    arrays = np.load(data)
    queries, truth = arrays["queries"], arrays["truth"]
    before = _memory()
    started = time.perf_counter()
    store = FAISSImageStore.load(folder, VectorsOnly(queries.shape[1]))
    opened_s = time.perf_counter() - started
    opened = _memory()
    hits, took = 0, 0.0
    for q, true in zip(queries, truth, strict=True):
        t = time.perf_counter()
        found = store.similarity_search_with_score_by_vector(q.tolist(), 10)
        took += time.perf_counter() - t
        hits += len({int(str(d.id)[1:]) for d, _ in found} & set(true.tolist()))
    print(
        json.dumps(
            {
                "imports": before,
                "opened": opened,
                "queried": _memory(),
                "open_s": opened_s,
                "ms": 1000 * took / len(queries),
                "recall": hits / truth.size,
                "index": store.index_info.get("factory"),
                "package": str(Path(sys.modules[FAISSImageStore.__module__].__file__ or "").parent),
            }
        )
    )


def image_record(i: int) -> tuple[str, Document]:
    """Row ``i``'s content id and an image-like document: the URI, and metadata as
    ``imgemb index`` records it (source, SHA-256, mtime, size, format: ~210 bytes as JSON)."""
    import hashlib

    cid = hashlib.sha256(i.to_bytes(8, "little")).hexdigest()
    source = f"/data/photos/2026/{i // 1000:04d}/IMG_{i:07d}.jpg"
    meta = {
        "source": source,
        "sha256": cid,
        "mtime": 1764000000.25 + i,
        "width": 4032 - i % 7,
        "height": 3024,
        "format": "JPEG",
        "bytes": 2_000_000 + i,
    }
    return cid, Document(page_content=source, metadata=meta)


def records_build(folder: str, n: int, dim: int) -> None:
    """Subprocess: save a flat store of ``n`` image-like records (issue 26, records off the
    heap) with the package on ``PYTHONPATH``; prints the documents' bytes per row on disk."""
    store = FAISSImageStore(VectorsOnly(dim), folder, index="flat")
    vectors = clustered(n, dim, seed=1)
    for start in range(0, n, 100_000):
        pairs = [image_record(i) for i in range(start, min(start + 100_000, n))]
        store.upsert_vectors(
            [c for c, _ in pairs], vectors[start : start + len(pairs)], [d for _, d in pairs]
        )
    del vectors
    store.save()
    docs = [p for p in Path(folder).iterdir() if p.name.startswith("documents-")]
    size = sum(p.stat().st_size for p in docs)
    print(json.dumps({"documents": [p.name for p in docs], "bytes_per_row": size / n}))


def records_case(folder: str, n_queries: int) -> None:
    """Subprocess: open a store of :func:`records_build`, run ``n_queries`` searches (k = 10,
    each result's document read) and print memory (MiB) and times as JSON."""
    import faiss  # noqa: F401 - imported before measuring, as the store would import it

    before = _memory()
    started = time.perf_counter()
    dim = int(json.loads((Path(folder) / "manifest.json").read_text())["dim"])
    store = FAISSImageStore.load(folder, VectorsOnly(dim))
    opened_s = time.perf_counter() - started
    opened = _memory()
    queries = clustered(n_queries, dim, seed=2)
    took, width = 0.0, 0
    for q in queries:
        t = time.perf_counter()
        found = store.similarity_search_with_score_by_vector(q.tolist(), 10)
        took += time.perf_counter() - t
        width += sum(int(d.metadata["width"]) > 0 for d, _ in found)
    t = time.perf_counter()
    filtered = store.similarity_search_with_score_by_vector(
        queries[0].tolist(), 10, filter={"width": 4032}
    )
    filter_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "rows": len(store),
                "imports": before,
                "opened": opened,
                "queried": _memory(),
                "open_s": opened_s,
                "ms": 1000 * took / len(queries),
                "results_read": width,
                "filter_s": filter_s,
                "filter_hits": len(filtered),
                "package": str(Path(sys.modules[FAISSImageStore.__module__].__file__ or "").parent),
            }
        )
    )


def rss_compare(vectors: np.ndarray, queries: np.ndarray, work: Path, ref: str) -> None:
    """Save an IVF-PQ store, then open + query it in two fresh processes: before and after."""
    folder = work / "rss-store"
    store = FAISSImageStore(VectorsOnly(vectors.shape[1]), folder, index="ivf-pq")
    fill(store, vectors)
    store.save()
    store.close()
    del store
    data = work / "rss-queries.npz"
    np.savez(data, queries=queries, truth=ann.exact_topk(vectors, queries, 10))
    baseline = work / "baseline"
    baseline.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "langchain_image_embeddings"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
    rows = {}
    for name, path in ((f"before ({ref})", baseline), ("after (this checkout)", REPO)):
        env = {**os.environ, "PYTHONPATH": str(path)}
        out = subprocess.run(
            [sys.executable, __file__, "--rss-case", str(folder), str(data)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        rows[name] = json.loads(out.strip().splitlines()[-1])
        print(f"{name}: package {rows[name]['package']}, index {rows[name]['index']}")
    n, dim = vectors.shape
    print(
        f"\nresident memory, IVF-PQ store of {n:,} x {dim} (vectors {n * dim * 4 / 2**20:.0f} MiB "
        f"on disk), opened and queried (200 held-out queries, k=10) in a fresh process; MiB"
    )
    print(
        f"{'case':24} {'imports':>8} {'opened':>8} {'queried':>8} {'anon':>8} {'file':>8} "
        f"{'peak':>8} {'+store':>8} {'open s':>7} {'ms/query':>9} {'recall@10':>9}"
    )
    for name, r in rows.items():
        q = r["queried"]
        print(
            f"{name:24} {r['imports']['VmRSS']:8.0f} {r['opened']['VmRSS']:8.0f} "
            f"{q['VmRSS']:8.0f} {q['RssAnon']:8.0f} {q['RssFile']:8.0f} {q['VmHWM']:8.0f} "
            f"{q['VmRSS'] - r['imports']['VmRSS']:8.0f} {r['open_s']:7.2f} {r['ms']:9.2f} "
            f"{r['recall']:9.3f}"
        )
    shutil.rmtree(folder, ignore_errors=True)


def table(title: str, rows: list[dict[str, Any]], flat_ms: float, flat_mb: float) -> None:
    print(f"\n{title}")
    print(
        f"{'index':8} {'factory':28} {'params':18} {'refine':>6} {'recall@10':>9} "
        f"{'(tuned)':>8} {'ms/query':>9} {'x flat':>7} {'memory MB':>10} {'x flat':>7} {'build s':>8}"
    )
    for r in rows:
        params = ",".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        print(
            f"{r['kind']:8} {r['factory']!s:28} {params:18} {r['refine']!s:>6} {r['recall']:9.3f} "
            f"{r['tuned_recall']!s:>8} {r['ms']:9.2f} {flat_ms / r['ms']:6.1f}x "
            f"{r['memory_mb']:10.1f} {r['memory_mb'] / flat_mb:6.2f}x {r['build_s']:8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--save-n", type=int, default=1_000_000)
    parser.add_argument("--photo-augment", type=int, default=2_000)
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("clustered", "photos", "save", "rss", "hard"),
        default=["clustered", "photos", "save", "rss"],
    )
    parser.add_argument("--hard-n", type=int, default=100_000)
    parser.add_argument("--hard-dim", type=int, default=256)
    parser.add_argument("--hard-queries", type=int, default=200)
    parser.add_argument(
        "--hard-kinds", nargs="+", default=["hnsw", "ivf-pq", "auto"], choices=(*ann.KINDS, "auto")
    )
    parser.add_argument("--hard-targets", nargs="+", type=float, default=[0.95, 0.99])
    parser.add_argument(
        "--hard-open",
        type=int,
        default=0,
        metavar="QUERIES",
        help="also save each hard-set store, open it in a fresh process and search QUERIES "
        "queries (the held-out ones repeated): RSS after open + queries (issue 26 used 1000)",
    )
    parser.add_argument(
        "--hard-cache",
        default=os.path.join(tempfile.gettempdir(), "imgemb-hard"),
        help="folder of the generated hard set and its truth (.npy), reused by later runs",
    )
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--rss-case", nargs=2, metavar=("STORE", "DATA"), help=argparse.SUPPRESS)
    parser.add_argument("--records-build", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--records-case", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_case:
        rss_case(*args.rss_case)
        return
    if args.records_build:  # issue 26: records off the heap (see docs/scale.md)
        records_build(args.records_build, args.n, args.dim)
        return
    if args.records_case:
        records_case(args.records_case, 1000)
        return
    work = Path(tempfile.mkdtemp(prefix="imgemb-ann-"))
    print(f"cores: {os.cpu_count()}, faiss threads: {__import__('faiss').omp_get_max_threads()}")
    try:
        if "hard" in args.parts and len(args.parts) == 1:
            hard_table(args)  # no clustered set: at 1 M x 512 memory is the limit
            return
        vectors = clustered(args.n, args.dim, seed=1)
        queries = clustered(200, args.dim, seed=2)
        if "rss" in args.parts:
            rss_compare(vectors, queries, work, args.baseline_ref)
        if "clustered" in args.parts:
            clustered_table(args, vectors, queries)
        if "photos" in args.parts:
            photos_table(work, args.photo_augment)
        if "save" in args.parts:
            save_table(args, work)
        if "hard" in args.parts:
            hard_table(args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def clustered_table(args: argparse.Namespace, vectors: np.ndarray, queries: np.ndarray) -> None:
    rows = [measure(kind, vectors, queries) for kind in ("flat", "hnsw", "ivf-pq")]
    table(
        f"clustered: {args.n:,} unit vectors, dim {args.dim}, 1,000 clusters; 200 held-out queries",
        rows,
        rows[0]["ms"],
        rows[0]["memory_mb"],
    )


def photos_table(work: Path, augment: int) -> None:
    stored, held = photo_vectors(augment, 100, work)
    saved_min = ann.MIN_ANN_ROWS
    ann.MIN_ANN_ROWS = 100  # the photo set is small: build the indexes anyway
    try:
        rows = [measure(kind, stored, held) for kind in ("flat", "hnsw", "ivf-pq")]
    finally:
        ann.MIN_ANN_ROWS = saved_min
    table(
        f"photos: {len(stored):,} Lite0 embeddings, dim {stored.shape[1]}; 100 held-out augmentations",
        rows,
        rows[0]["ms"],
        rows[0]["memory_mb"],
    )


def save_table(args: argparse.Namespace, work: Path) -> None:
    cost = save_cost(args.save_n, args.dim, work)
    print(
        f"\nsave cost, flat store of {args.save_n:,} x {args.dim} float32 "
        f"({args.save_n * args.dim * 4 / 2**30:.2f} GiB): first save {cost['first']:.1f} s; "
        f"+1,000 vectors: incremental save {cost['incremental']:.2f} s vs full rewrite "
        f"{cost['full']:.1f} s = {100 * cost['incremental'] / cost['full']:.1f} %; "
        f"reopen {cost['reopen']:.1f} s"
    )


if __name__ == "__main__":
    main()
