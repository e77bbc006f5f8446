"""Memory of image uploads in ``imgemb serve``: a budget shared by all decodes in flight (an
upload that alone exceeds it runs alone), and uploads decoded at the size the model needs.

The budget is checked by instrumenting the decodes (RSS is too noisy for a unit test);
``benchmarks/serve_uploads.py`` measures the process's memory."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from PIL import Image

import langchain_image_embeddings.images as images
from langchain_image_embeddings.serve import ServeSettings, create_app
from langchain_image_embeddings.serve import session as session_module
from langchain_image_embeddings.serve.session import StoreSession, decode_cost
from tests.serve_helpers import photo_store


@pytest.fixture(scope="module")
def clip_store(tiny_clip_embeddings: Any, photos_dir: Path, tmp_path_factory: Any) -> Any:
    store, _ = photo_store(
        tiny_clip_embeddings, photos_dir, tmp_path_factory.mktemp("clip"), copies=False
    )
    return store


def _png(mode: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (40, 90, 200, 128)[: len(mode)]).save(buffer, format="PNG")
    return buffer.getvalue()


def test_concurrent_decodes_stay_within_the_budget(
    clip_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _png("RGB", (1000, 1000))  # 4 MB decoded (Pillow keeps RGB in 4 bytes a pixel)
    settings = ServeSettings(max_upload_memory=6_000_000)  # one decode at a time
    session = StoreSession(clip_store, settings)
    lock = threading.Lock()
    in_flight: list[int] = [0, 0]  # now, most at once
    real_load = images.load_image

    def counting_load(*args: Any, **kwargs: Any) -> Image.Image:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
            assert session.upload_budget.held <= settings.max_upload_memory
        try:
            time.sleep(0.2)  # long enough for the other decode thread to start one too
            return real_load(*args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(images, "load_image", counting_load)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: session.image(data, 3, None), range(6)))
    assert all(len(hits) == 3 for hits in results)
    assert in_flight[1] == 1, f"{in_flight[1]} decodes at once within a one-decode budget"
    assert 0 < session.upload_budget.peak <= settings.max_upload_memory
    assert session.upload_budget.held == 0  # every decode gave its share back


def test_budget_is_given_back_after_a_failed_decode(clip_store: Any) -> None:
    session = StoreSession(clip_store, ServeSettings(max_upload_memory=6_000_000))
    truncated = _png("RGB", (1000, 1000))[:-200]
    with pytest.raises(session_module.ApiError):
        session.image(truncated, 3, None)
    assert session.upload_budget.held == 0
    assert len(session.image(_png("RGB", (1000, 1000)), 3, None)) == 3


def test_an_upload_over_the_whole_budget_runs_alone(
    clip_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload the pixel cap accepts is never refused for memory: over the budget, it waits
    until no other decode holds any, then is decoded with nothing beside it."""
    settings = ServeSettings(max_upload_memory=1_000_000)  # less than any upload below
    session = StoreSession(clip_store, settings)
    lock = threading.Lock()
    in_flight: list[int] = [0, 0]
    real_load = images.load_image

    def counting_load(*args: Any, **kwargs: Any) -> Image.Image:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            time.sleep(0.2)
            return real_load(*args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(images, "load_image", counting_load)
    big = _png("RGBA", (1000, 1000))  # ~8 MB to decode, 8x the budget
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: session.image(big, 3, None), range(4)))
    assert all(len(hits) == 3 for hits in results)
    assert in_flight[1] == 1, f"{in_flight[1]} over-budget decodes ran at once"
    # one RGBA decode (8 bytes a pixel) held at a time, over the 1 MB budget
    assert session.upload_budget.peak == 8 * 1000 * 1000 > settings.max_upload_memory
    assert session.upload_budget.held == 0
    client = TestClient(create_app(clip_store, settings))
    response = client.post("/api/search/image", files={"file": ("big.png", big, "image/png")})
    assert response.status_code == 200, response.text


def test_a_large_rgba_upload_is_decoded_reduced(
    clip_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = StoreSession(clip_store, ServeSettings())
    seen: list[tuple[int, int]] = []
    kind = type(clip_store.image_embeddings)
    real_preprocess = kind.preprocess

    def recording_preprocess(self: Any, image: Any) -> Any:
        seen.append(image.size)
        return real_preprocess(self, image)

    # the micro-batcher preprocesses the decoded uploads (a pydantic model: patched on the
    # class)
    monkeypatch.setattr(kind, "preprocess", recording_preprocess)
    hits = session.image(_png("RGBA", (4000, 3000)), 3, None)
    assert len(hits) == 3
    # the tiny CLIP takes 32 px: a decode covering 2x that, reduced by an integer factor
    (width, height) = seen[0]
    assert width * height < 4000 * 3000 // 100, seen


def test_decode_cost_reads_only_the_header() -> None:
    from langchain_image_embeddings.images import open_image_header

    def cost(data: bytes, draft: tuple[int, int] | None) -> int:
        return decode_cost(open_image_header(io.BytesIO(data), "test"), draft)

    assert cost(_png("RGB", (1000, 500)), (64, 64)) == 1000 * 500 * 4
    assert cost(_png("RGBA", (1000, 500)), (64, 64)) == 1000 * 500 * 8  # a premultiplied copy
    assert cost(_png("L", (1000, 500)), (64, 64)) == 1000 * 500
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    assert cost(jpeg, (448, 448)) == 1000 * 750 * 4  # DCT scale 1/4: the smallest covering 448
    assert cost(jpeg, None) >= 4000 * 3000 * 4
