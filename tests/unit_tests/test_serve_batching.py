"""Dynamic micro-batching of image queries and the app that answers while the model loads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from langchain_image_embeddings.serve import ServeSettings, create_app
from langchain_image_embeddings.serve.batching import MicroBatcher
from langchain_image_embeddings.serve.loading import LoadingApp
from tests.serve_helpers import photo_store


def test_concurrent_items_share_one_call_and_keep_their_order() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def double(items: list[int]) -> list[int]:
        calls.append(items)
        gate.wait(5)  # the first call holds the worker while the others queue up
        return [x * 2 for x in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(double, max_batch=8, max_wait=0.01)
    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(batcher.submit, 100)
        while not calls:
            time.sleep(0.005)
        rest = [pool.submit(batcher.submit, i) for i in range(8)]
        while batcher._queue.qsize() < 8:
            time.sleep(0.005)
        gate.set()
        assert first.result() == 200 and [f.result() for f in rest] == [i * 2 for i in range(8)]
    assert batcher.batches[0] == 1 and batcher.batches[1] == 8  # the 8 waiting: one call
    batcher.close()


def test_no_batching_with_max_batch_1_and_errors_reach_every_caller() -> None:
    seen: list[int] = []

    def fail_on_3(items: list[int]) -> list[int]:
        seen.append(len(items))
        if 3 in items:
            raise ValueError("bad item")
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(fail_on_3, max_batch=1)
    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(batcher.submit, i) for i in range(4)]
        with pytest.raises(ValueError, match="bad item"):
            results[3].result()
        assert [r.result() for r in results[:3]] == [0, 1, 2]
    assert set(seen) == {1}
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(fail_on_3, max_batch=0)
    batcher.close()


def test_concurrent_uploads_are_embedded_together(
    lite0_embeddings: Any, photos_dir: Path, tmp_path_factory: Any
) -> None:
    """Eight uploads at once: the answers equal those of one at a time, in fewer calls."""
    store, _ = photo_store(lite0_embeddings, photos_dir, tmp_path_factory.mktemp("lite0"))
    client = TestClient(create_app(store, ServeSettings(max_batch=8, batch_wait=0.05)))
    photos = sorted((photos_dir / "copies").glob("*-crop.jpg"))[:8]

    def search(path: Path) -> list[str]:
        with open(path, "rb") as f:
            answer = client.post("/api/search/image?k=3", files={"file": (path.name, f)})
        return [h["id"] for h in answer.json()["results"]]

    alone = [search(p) for p in photos]
    batcher = client.app.state.session.batcher  # type: ignore[attr-defined]
    before = len(batcher.batches)
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(search, photos))
    assert together == alone
    assert len(batcher.batches) - before < 8 and max(batcher.batches[before:]) > 1


def test_the_loading_app_answers_at_once_then_hands_over() -> None:
    from fastapi import FastAPI

    release = threading.Event()
    real = FastAPI()

    @real.get("/api/info")
    def info() -> dict[str, str]:
        return {"state": "ready"}

    def load() -> Any:
        release.wait(10)
        return real

    app = LoadingApp(load, ServeSettings(allowed_hosts=("testserver",)), title="<b>t</b>")
    client = TestClient(app)
    assert client.get("/api/info").json() == {"state": "loading"}
    page = client.get("/")
    assert page.status_code == 200 and "&lt;b&gt;t&lt;/b&gt;" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    busy = client.get("/api/search/text?q=cat")
    assert busy.status_code == 503 and busy.json()["error"] == "loading"
    assert client.get("/api/info", headers={"Host": "attacker.example"}).status_code == 400
    release.set()
    assert app.ready.wait(10)
    assert client.get("/api/info").json() == {"state": "ready"}


def test_a_failed_load_is_reported() -> None:
    def load() -> Any:
        raise FileNotFoundError("no store at faiss:nowhere")

    app = LoadingApp(load, ServeSettings())
    assert app.ready.wait(10)
    client = TestClient(app)
    info = client.get("/api/info").json()
    assert info["state"] == "failed" and "no store at faiss:nowhere" in info["message"]
    assert client.get("/api/duplicates").status_code == 503
