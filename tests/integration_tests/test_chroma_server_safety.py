"""Issue 5 against a real Chroma server: batches under the client maximum, reruns without
duplicates, and a server that goes away surfacing fast as ``StoreError``.

This test starts (and stops, by PID) its own ``chroma run`` on 127.0.0.1, so stopping it
does not disturb the session-wide server of ``conftest.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores import ChromaImageStore
from langchain_image_embeddings.vectorstores.chroma import _store as chroma_store
from tests.integration_tests.conftest import _free_port
from tests.unit_tests.store_helpers import write_folder

pytestmark = pytest.mark.integration


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    import chromadb
    from chromadb.config import Settings

    chroma = Path(sys.executable).with_name("chroma")
    host, port = "127.0.0.1", _free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "db"), "--host", host, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                chromadb.HttpClient(
                    host=host, port=port, settings=Settings(anonymized_telemetry=False)
                ).heartbeat()
                break
            except Exception:
                assert time.monotonic() < deadline, "chroma server did not start in 60 s"
                time.sleep(0.3)
        yield host, port, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
        log.close()


def test_server_batches_reruns_and_outage(
    own_server: tuple[str, int, subprocess.Popen[bytes]],
    tiny_clip_embeddings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port, proc = own_server
    monkeypatch.setattr(chroma_store, "BACKOFF_S", 0.05)
    store = ChromaImageStore.http(host, port, tiny_clip_embeddings, collection_name="safety")
    monkeypatch.setattr(store.client, "get_max_batch_size", lambda: 2)
    original = store.collection.upsert
    calls: list[int] = []

    def spy(**kwargs: Any) -> Any:
        calls.append(len(kwargs["ids"]))
        return original(**kwargs)

    monkeypatch.setattr(store.collection, "upsert", spy)
    paths = write_folder(tmp_path / "imgs", 5)
    first = store.add_images(paths[:3])
    assert calls == [2, 1] and len(store) == 3
    again = store.add_images(paths)  # a rerun of an interrupted ingest: no duplicates
    assert sorted(again.skipped) == sorted(first.added) and len(again.added) == 2
    assert len(store) == 5 and len(set(store.records())) == 5

    os.killpg(proc.pid, signal.SIGTERM)  # the server goes away
    proc.wait(timeout=30)
    started = time.monotonic()
    with pytest.raises(StoreError, match="Chroma"):
        len(store)
    with pytest.raises(StoreError):
        store.add_images(write_folder(tmp_path / "more", 1, start=9))
    with pytest.raises(StoreError, match="cannot reach"):
        ChromaImageStore.http(host, port, tiny_clip_embeddings)
    assert time.monotonic() - started < 120  # bounded retries (generous, not a benchmark)
