"""Milvus benchmark: the image store against raw pymilvus, writes and searches side by side.

Measured in one run, on a Milvus Lite file (pymilvus starts Milvus Lite in a child process)
and on a ``milvus-lite server`` process on 127.0.0.1 (started here, stopped by its PID):

(a) **bulk write**, rows/s of ``--rows`` unit vectors (512-d by default) with image-like
    metadata (source path, SHA-256, width, height, format, bytes, mtime), each into a new
    collection:

    - ``raw insert``: ``MilvusClient.insert`` of ``--batch`` rows per call, the store's schema
      and index (``collection_schema``), rows built from numpy as a pymilvus user would;
    - ``store upsert_vectors``: ``MilvusImageStore.upsert_vectors`` in ``--batch``-row calls
      (what ``add_embeddings``-style callers and ``commit_add`` run);
    - ``store load_shards``: ``load_shards`` (what ``imgemb load`` runs) of the same rows
      written as Parquet shards (10,000 rows each) beforehand: shard checks, the ``add_images``
      plan (one ``get`` of the batch's ids to skip stored ones), the write, a flush per shard;
    - ``store load_shards_256``: the same with 256-row write calls (one 256-row ``upsert``
      per call), as the store wrote before issue 26: the "before" row.
    - ``load_shards@REF``: ``load_shards`` of the package at git ``REF`` (``git archive``
      into the work folder, run in a child process with it on ``PYTHONPATH``; on a Lite
      target into a Lite file of its own), e.g. ``--cases raw,load_shards,load_shards@main
      --rounds 2``: the code before a change and after it, alternately in one run.

(b) **search** p50/p95 of ``--queries`` single-vector searches (k=10, perturbed stored
    vectors, ``page_content`` and ``metadata`` returned): raw ``MilvusClient.search`` before
    and after ``flush``; the store right after its bulk write (as a user meets it) and after
    ``flush``. Raw searches use the store's ``ef`` (64).

Rows are generated per batch from a seeded generator, so every case writes the same rows and
memory stays bounded. The store's model is ``timm:resnet18`` with random weights (512-d, never
run: only its record and content ids are used).

Usage::

    python benchmarks/milvus.py                     # 100,000 rows, Lite file and server
    python benchmarks/milvus.py --rows 20000 --targets lite --json /tmp/milvus.json
    python benchmarks/milvus.py --rows 10000 --cases raw,load_shards,load_shards@main --rounds 2

The load average (1 minute) is printed at the start and the end: timings on a shared machine
are noisy, so compare the ratios of one run, not numbers across runs. ``client_cpu_s`` in the
JSON lines is this process's CPU time during the write (the Python side: data to requests),
which a busy machine disturbs far less than wall time; a Lite server's own work runs in
another process and is not in it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: The package a ``load_shards@REF`` child process runs (set by the parent), else this checkout.
PACKAGE_ENV = "IMGEMB_BENCH_PACKAGE"
sys.path.insert(0, os.environ.get(PACKAGE_ENV) or str(REPO))

SHARD_ROWS = 10_000
MODEL = "resnet18"


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def batch_rows(
    start: int, count: int, dim: int, model_id: str
) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """Ids, unit vectors and image-like metadata of rows ``start .. start + count``."""
    from langchain_image_embeddings.vectorstores._records import content_id

    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids, metas = [], []
    for n in range(start, start + count):
        sha = hashlib.sha256(str(n).encode()).hexdigest()
        ids.append(content_id(sha, model_id))
        metas.append(
            {
                "source": f"/data/photos/{n // 1000:05d}/IMG_{n:08d}.jpg",
                "sha256": sha,
                "width": 640 + n % 1280,
                "height": 480 + n % 960,
                "format": "JPEG" if n % 5 else "PNG",
                "bytes": 100_000 + n % 900_000,
                "mtime": 1_700_000_000.0 + n,
            }
        )
    return ids, vectors, metas


def batches(rows: int, size: int, dim: int, model_id: str) -> Iterator[Any]:
    for start in range(0, rows, size):
        yield batch_rows(start, min(size, rows - start), dim, model_id)


def write_shards(folder: Path, rows: int, dim: int, record: dict[str, Any]) -> None:
    """The benchmark's rows as ``embed-dataset`` shards (cached per size)."""
    from langchain_image_embeddings.scale.plan import Shard
    from langchain_image_embeddings.scale.shards import ShardRows, write_shard

    if folder.is_dir() and len(list(folder.glob("shard-*.parquet"))) == -(-rows // SHARD_ROWS):
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for index, start in enumerate(range(0, rows, SHARD_ROWS)):
        _, vectors, metas = batch_rows(start, min(SHARD_ROWS, rows - start), dim, record["model"])
        shard = Shard(index, tuple(m["source"] for m in metas), "0" * 64)
        write_shard(folder, ShardRows(shard, list(metas), vectors, [None] * len(metas)), record)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def queries_of(count: int, rows: int, dim: int, model_id: str) -> np.ndarray:
    """Stored vectors (spread over the collection) perturbed a little, unit length."""
    rng = np.random.default_rng(12345)
    out = []
    for n in np.linspace(0, rows - 1, count).astype(int):
        _, vectors, _ = batch_rows(int(n), 1, dim, model_id)
        out.append(vectors[0] + rng.normal(0, 0.02, dim).astype(np.float32))
    q = np.asarray(out, np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def time_searches(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> dict[str, float]:
    search(queries[0])  # the first search may load or flush: timed on its own
    first = time.perf_counter()
    search(queries[0])
    first_s = time.perf_counter() - first
    took = []
    for q in queries:
        t = time.perf_counter()
        search(q)
        took.append(time.perf_counter() - t)
    return {**percentiles(took), "warm_first_ms": first_s * 1000}


def raw_case(uri: str, args: argparse.Namespace, model_id: str, queries: np.ndarray) -> dict:
    from pymilvus import MilvusClient

    from langchain_image_embeddings.vectorstores.milvus._schema import collection_schema

    client = MilvusClient(uri=uri, timeout=60)
    name = f"raw_{os.getpid()}_{int(time.time())}"
    schema, index = collection_schema(args.dim)
    client.create_collection(name, schema=schema, index_params=index)
    cpu = time.process_time()
    started = time.perf_counter()
    for ids, vectors, metas in batches(args.rows, args.batch, args.dim, model_id):
        data = [
            {"id": i, "vector": v, "page_content": m["source"], "metadata": m}
            for i, v, m in zip(ids, vectors.tolist(), metas, strict=True)
        ]
        client.insert(name, data=data)
    write_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu

    def search(q: np.ndarray) -> Any:
        return client.search(
            name,
            data=[q.tolist()],
            limit=10,
            output_fields=["page_content", "metadata"],
            search_params={"metric_type": "COSINE", "params": {"ef": 64}},
        )

    hits = search(queries[0])[0]
    unflushed = time_searches(search, queries)
    t = time.perf_counter()
    client.flush(name)
    flush_s = time.perf_counter() - t
    flushed = time_searches(search, queries)
    count = client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
    client.drop_collection(name)
    client.close()
    return {
        "write_rows_per_s": args.rows / write_s,
        "write_s": write_s,
        "client_cpu_s": cpu_s,
        "flush_s": flush_s,
        "count": int(count),
        "top_hit": hits[0]["id"] if hits else None,
        "search_unflushed": unflushed,
        "search_flushed": flushed,
    }


def store_case(
    uri: str, args: argparse.Namespace, embeddings: Any, queries: np.ndarray, shards: Path | None
) -> dict:
    from langchain_core.documents import Document

    from langchain_image_embeddings.scale.load import load_shards
    from langchain_image_embeddings.vectorstores import MilvusImageStore

    name = f"store_{'load' if shards else 'upsert'}_{os.getpid()}_{int(time.time())}"
    store = MilvusImageStore.connect(uri, embeddings, collection_name=name, timeout=120)
    if args.store_write_batch:
        store.write_batch = args.store_write_batch
    cpu = time.process_time()
    started = time.perf_counter()
    if shards is not None:
        report = load_shards(store, shards)
        assert len(report.result.added) == args.rows, len(report.result.added)
    else:
        for ids, vectors, metas in batches(args.rows, args.batch, args.dim, embeddings.model_id):
            docs = [Document(page_content=m["source"], metadata=m) for m in metas]
            store.upsert_vectors(ids, vectors, docs)
    write_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu

    def search(q: np.ndarray) -> Any:
        return store.similarity_search_with_score_by_vector(q, k=10)

    hits = search(queries[0])
    after_write = time_searches(search, queries)
    t = time.perf_counter()
    store.client.flush(name)  # whatever the store left unflushed
    flush_s = time.perf_counter() - t
    flushed = time_searches(search, queries)
    count = len(store)
    store.drop()
    store.close()
    return {
        "write_rows_per_s": args.rows / write_s,
        "write_s": write_s,
        "client_cpu_s": cpu_s,
        "flush_s": flush_s,
        "count": count,
        "top_hit": hits[0][0].id if hits else None,
        "search_after_write": after_write,
        "search_flushed": flushed,
    }


def package_at(ref: str, work: Path) -> Path:
    """The package at git ``ref``, extracted under ``work`` (once per ref)."""
    folder = work / f"package-{ref.replace('/', '_')}"
    if not (folder / "langchain_image_embeddings").is_dir():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", ref, "langchain_image_embeddings"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def child_case(uri: str, args: argparse.Namespace, shards: Path, ref: str) -> dict[str, Any]:
    """``store load_shards`` of the package at ``ref``, in a child process."""
    env = {**os.environ, PACKAGE_ENV: str(package_at(ref, args.work)), "PYTHONPATH": ""}
    command = [sys.executable, __file__, "--child-load", uri, str(shards)]
    command += ["--rows", str(args.rows), "--dim", str(args.dim), "--queries", str(args.queries)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


class LiteServer:
    """``milvus-lite server`` on 127.0.0.1 (as tests/integration_tests/conftest.py starts it)."""

    def __init__(self, data: Path) -> None:
        script = Path(sys.executable).with_name("milvus-lite")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        data.mkdir(parents=True, exist_ok=True)
        self.log = open(data / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(script),
                "server",
                "--data-dir",
                str(data / "db"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited: {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("milvus-lite server did not listen") from None
                time.sleep(0.2)
        self.uri = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()


def make_embeddings() -> Any:
    import torch

    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.encoders.timm import TimmEncoder

    torch.manual_seed(0)
    encoder = TimmEncoder(MODEL, pretrained=None, allow_random_weights=True)
    return ImageEmbeddings(encoder, device="cpu")


def table(results: dict[str, Any]) -> str:
    """The markdown table of a run: ratios to raw pymilvus on the same target."""
    lines = [
        "| target | case | write rows/s | x raw | write + flush rows/s | x raw | "
        "search p50 ms (p95) | x raw flushed | flushed p50 ms (p95) | x raw flushed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target, cases in results.items():
        raw = cases["raw"]
        base_rate = raw["write_rows_per_s"]
        base_total = raw["count"] / (raw["write_s"] + raw["flush_s"])
        base_p50 = raw["search_flushed"]["p50_ms"]
        for case, r in cases.items():
            first = r.get("search_unflushed") or r.get("search_after_write")
            total = r["count"] / (r["write_s"] + r["flush_s"])
            label = "raw insert (unflushed)" if case == "raw" else f"{case} (after write)"
            lines.append(
                f"| {target} | {label} | {r['write_rows_per_s']:,.0f} | "
                f"{r['write_rows_per_s'] / base_rate:.2f} | {total:,.0f} | "
                f"{total / base_total:.2f} | "
                f"{first['p50_ms']:.1f} ({first['p95_ms']:.1f}) | "
                f"{first['p50_ms'] / base_p50:.2f} | "
                f"{r['search_flushed']['p50_ms']:.1f} ({r['search_flushed']['p95_ms']:.1f}) | "
                f"{r['search_flushed']['p50_ms'] / base_p50:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512, help="must be the model's (512)")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per write call")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--targets", default="lite,server", help="lite, server or both")
    parser.add_argument(
        "--cases",
        default="raw,upsert_vectors,load_shards,load_shards_256",
        help="load_shards_256: load_shards with 256-row write calls, as before issue 26",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the cases this many times, alternately"
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "imgemb-milvus")
    parser.add_argument("--child-load", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=None, help="print the table of a JSON")
    args = parser.parse_args()
    if args.table is not None:
        print(table(json.loads(args.table.read_text())["results"]))
        return
    if args.child_load is not None:  # a load_shards@REF case, in the package at REF
        uri, folder = args.child_load
        embeddings = make_embeddings()
        queries = queries_of(args.queries, args.rows, args.dim, embeddings.model_id)
        args.store_write_batch = 0
        print(json.dumps(store_case(uri, args, embeddings, queries, Path(folder))))
        return
    load_start = load_average()
    print(f"load average at start: {load_start:.2f} ({os.cpu_count()} CPUs)", flush=True)
    embeddings = make_embeddings()
    if embeddings.dim != args.dim:
        raise SystemExit(f"--dim must be {embeddings.dim}")
    from langchain_image_embeddings.vectorstores._records import model_record

    record = model_record(embeddings)
    cases = args.cases.split(",")
    shards = args.work / f"shards-{args.rows}"
    if any(case.startswith("load_shards") for case in cases):
        write_shards(shards, args.rows, args.dim, record)
    queries = queries_of(args.queries, args.rows, args.dim, embeddings.model_id)
    results: dict[str, dict[str, Any]] = {}
    for target in args.targets.split(","):
        server = None
        folder = args.work / f"{target}-{os.getpid()}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if target == "server":
            server = LiteServer(folder)
            uri = server.uri
        else:
            uri = str(folder / "bench.db")
        try:
            for turn in range(args.rounds):
                out: dict[str, Any] = {}
                for case in cases:
                    print(f"{target}: {case} ...", flush=True)
                    if case == "raw":
                        out[case] = raw_case(uri, args, embeddings.model_id, queries)
                    elif "@" in case:  # load_shards@REF
                        ref = case.split("@", 1)[1]
                        child_uri = uri if server is not None else str(folder / f"{turn}.db")
                        out[f"store {case}"] = child_case(child_uri, args, shards, ref)
                    else:
                        use = shards if case.startswith("load_shards") else None
                        before = case.endswith("_256")  # the store's requests before issue 26
                        args.store_write_batch = 256 if before else 0
                        out[f"store {case}"] = store_case(uri, args, embeddings, queries, use)
                    print(json.dumps(out[list(out)[-1]]), flush=True)
                results[target if args.rounds == 1 else f"{target} #{turn + 1}"] = out
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(folder, ignore_errors=True)
    load_end = load_average()
    print()
    print(
        f"{args.rows:,} rows x {args.dim}-d, write batch {args.batch:,}, "
        f"{args.queries} queries, k=10"
    )
    print(table(results))
    print(f"\nload average: {load_start:.2f} at start, {load_end:.2f} at end")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "dim": args.dim,
                    "batch": args.batch,
                    "queries": args.queries,
                    "load_average": {"start": load_start, "end": load_end},
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
