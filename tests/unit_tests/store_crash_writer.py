"""A store writer run as a subprocess by ``test_store_safety.py`` (no torch: fast to start).

Usage: ``python store_crash_writer.py MODE KIND PATH [ACK_FILE] [MAX_BATCHES]``

* ``MODE`` ``loop``: open the store, then add a batch of precomputed vectors and make it
  durable (FAISS ``save``; Chroma writes through), append ``FIRST STOP`` to ``ACK_FILE``
  after each write returned, forever (or ``MAX_BATCHES`` times). Killed by the test.
* ``MODE`` ``hold``: take the writer lock, print ``ready``, sleep until killed.
* ``MODE`` ``try``: try to take the writer lock; exit 0, or print the error and exit 3.

``KIND`` is ``faiss``, ``faiss-inc`` (FAISS with incremental saves forced: a new segment per
save, compaction every few saves, and each batch also replaces an earlier item, so that
deletions are saved too) or ``chroma`` (embedded folder); ``hold`` also takes ``dir``: the
bare writer lock of a folder, whatever store (and model) it holds.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

import numpy as np
from langchain_core.documents import Document

DIM = 64
BATCH = 40
MODEL_ID = "test:precomputed-vectors"


class PrecomputedEncoder:
    """Stands in for an encoder: only its fingerprint is recorded by the stores."""

    def fingerprint(self) -> dict[str, Any]:
        return {"spec": MODEL_ID, "dim": DIM, "weights": "none"}


class PrecomputedEmbeddings:
    """The parts of ``ImageEmbeddings`` a store uses when vectors are given directly."""

    model_id = MODEL_ID
    dim = DIM
    encoder = PrecomputedEncoder()
    load_options = None
    supports_text = False


def item_id(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"item-{n}"))


def item_vector(n: int) -> np.ndarray:
    vec = np.random.default_rng(n).standard_normal(DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


def item_document(n: int) -> Document:
    return Document(page_content=f"mem://{n}", metadata={"source": f"mem://{n}", "n": n})


def open_store(kind: str, path: str) -> Any:
    embeddings: Any = PrecomputedEmbeddings()
    if kind in ("faiss", "faiss-inc"):
        from langchain_image_embeddings.vectorstores.faiss import FAISSImageStore

        store = FAISSImageStore.open(path, embeddings)
        if kind == "faiss-inc":
            store.full_save_below_bytes = 0  # small as it is, save it segment by segment
            store.max_segments = 3
        return store
    from langchain_image_embeddings.vectorstores.chroma import ChromaImageStore

    return ChromaImageStore.persistent(path, embeddings)


def main(argv: list[str]) -> int:
    mode, kind, path = argv[:3]
    if mode == "try":
        from langchain_image_embeddings.errors import StoreLockedError

        try:
            open_store(kind, path).acquire_write_lock()
        except StoreLockedError as exc:
            print(exc, flush=True)
            return 3
        return 0
    if kind == "dir":
        from langchain_image_embeddings._locks import StoreLock

        store: Any = StoreLock(path)
        store.acquire()
    else:
        store = open_store(kind, path)
        store.acquire_write_lock()
    print("ready", flush=True)
    if mode == "hold":
        while True:
            time.sleep(1)
    ack_file = argv[3]
    max_batches = int(argv[4]) if len(argv) > 4 else -1
    n = len(store)
    done = 0
    while done != max_batches:
        numbers = list(range(n, n + BATCH))
        if kind == "faiss-inc" and n >= 17:
            numbers.append(n - 17)  # a replacement: the old row becomes a deletion
        store.upsert_vectors(
            [item_id(i) for i in numbers],
            np.stack([item_vector(i) for i in numbers]),
            [item_document(i) for i in numbers],
        )
        store.persist()
        with open(ack_file, "a", encoding="ascii") as fh:
            fh.write(f"{n} {n + BATCH}\n")
        n += BATCH
        done += 1
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
