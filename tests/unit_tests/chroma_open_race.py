"""Opens a fresh embedded Chroma folder at a given moment, as ``test_holes.py`` needs.

Usage: ``python chroma_open_race.py PATH START_AT`` where ``START_AT`` is a ``time.time()``
value: chromadb is imported first, then the process sleeps until ``START_AT`` so that
several of them open the folder at the same instant, then it opens the store and takes its
writer lock. Exit 0: opened and locked; 3: ``StoreLockedError`` (printed); 4: any other
``StoreError`` (printed).
"""

from __future__ import annotations

import sys
import time

import chromadb  # noqa: F401  (imported before the start line: the slow part)

from langchain_image_embeddings.errors import StoreError, StoreLockedError
from langchain_image_embeddings.vectorstores.chroma import ChromaImageStore
from tests.unit_tests.store_crash_writer import PrecomputedEmbeddings


def main(path: str, start_at: float) -> int:
    time.sleep(max(0.0, start_at - time.time()))
    try:
        store = ChromaImageStore.persistent(path, PrecomputedEmbeddings())  # type: ignore[arg-type]
        store.acquire_write_lock()
    except StoreLockedError as exc:
        print(f"locked: {exc}", flush=True)
        return 3
    except StoreError as exc:
        print(f"error: {exc}", flush=True)
        return 4
    time.sleep(0.5)  # hold the lock a moment, as a writer would
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
