"""Stores and a live server for the tests of ``imgemb serve`` (API and browser)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Built stores, per (model id, photos folder): built once per session, shared read-only.
_STORES: dict[tuple[str, str], Any] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def photo_store(embeddings: Any, photos_dir: Path, root: Path, *, copies: bool = True) -> Any:
    """A FAISS store of the sample photos (and their copies), built once per session."""
    from langchain_image_embeddings.sync import sync_directory
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    key = (embeddings.model_id, f"{photos_dir}:{copies}")
    if key not in _STORES:
        folder = root / "photos"
        if not folder.exists():
            shutil.copytree(photos_dir, folder)
            if not copies:
                shutil.rmtree(folder / "copies")
        store = FAISSImageStore(embeddings, root / "index")
        sync_directory(store, folder)
        store.persist()
        _STORES[key] = (store, folder)
    return _STORES[key]


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 (free port) in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
