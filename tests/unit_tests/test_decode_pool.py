"""Decode workers sized by measurement: the estimate, the feedback, the memory bound, the
gate, and the pipeline that uses them (explicit ``num_workers`` is never changed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.pipeline import ImagePipeline, PipelineProgress
from langchain_image_embeddings.pipeline._decode_pool import (
    SHRINK_AFTER,
    DecodeGate,
    DecodeSizer,
    SizerDecision,
    estimate_workers,
    max_decode_workers,
    start_workers,
)


@pytest.fixture(autouse=True)
def _cold_start() -> Iterator[None]:
    """Each test starts without a size learned by an earlier pipeline over its encoder."""
    from langchain_image_embeddings.pipeline import _stream as pipeline_module

    pipeline_module._LAST_WORKERS.clear()
    yield
    pipeline_module._LAST_WORKERS.clear()


# -- pure decisions --------------------------------------------------------------------------------
def test_estimate_follows_the_decode_to_model_ratio() -> None:
    # Lite0 on 12 MP JPEGs (decode 32 ms, model 18 ms): 4 threads on 2 cores, as measured.
    assert estimate_workers(0.032, 0.018, device="cpu", max_workers=4) == 4
    # ViT-B/32 (model 90 ms): one thread keeps up; more only oversubscribe the cores.
    assert estimate_workers(0.025, 0.090, device="cpu", max_workers=4) == 1
    # On a GPU the model needs no core: less headroom, many more threads.
    assert estimate_workers(0.008, 0.0005, device="cuda", max_workers=32) == 20
    assert estimate_workers(0.008, 0.0005, device="cuda", max_workers=16) == 16  # capped
    assert estimate_workers(0.001, 0.0, device="cpu", max_workers=4) == 4
    assert estimate_workers(0.0, 0.010, device="cpu", max_workers=4) == 1


def test_bounds_and_start() -> None:
    assert max_decode_workers("cpu", cpus=2) == 4
    assert max_decode_workers("cpu", cpus=1) == 2
    assert max_decode_workers("cpu", cpus=64) == 16
    assert max_decode_workers("cuda", cpus=16) == 16
    assert max_decode_workers("cuda:1", cpus=64) == 32
    assert start_workers("cpu", cpus=2) == 2
    assert start_workers("cpu", cpus=1) == 1
    assert start_workers("cuda", cpus=64) == 32


def _decodes(sizer: DecodeSizer, n: int, cpu: float, image_bytes: int = 1_000_000) -> None:
    for _ in range(n):
        sizer.record_decode(cpu, image_bytes)


def test_sizer_estimates_then_grows_when_the_model_waits() -> None:
    sizer = DecodeSizer(device="cpu", start=2, max_workers=8)
    _decodes(sizer, 8, 0.010)
    # batch 1: decode 10 ms, model 20 ms/img -> ceil(2 * 0.5) = 1 thread
    assert sizer.after_batch(images=8, wait_seconds=0.3, busy_seconds=0.16, next_ready=False) == 1
    _decodes(sizer, 8, 0.010)
    # batch 2: the model waited 60% of the time -> grow in proportion (x2.5, at most x2)
    assert sizer.after_batch(images=8, wait_seconds=0.24, busy_seconds=0.16, next_ready=False) == 2
    _decodes(sizer, 8, 0.010)
    assert sizer.after_batch(images=8, wait_seconds=0.08, busy_seconds=0.16, next_ready=False) == 3
    reasons = [d.reason for d in sizer.decisions]
    assert reasons == ["start", "estimate", "model waits", "model waits"]
    assert [d.workers for d in sizer.decisions] == [2, 1, 2, 3]
    # A backlog now never shrinks below the size at which the model last waited.
    for _ in range(3 * SHRINK_AFTER):
        _decodes(sizer, 8, 0.010)
        sizer.after_batch(images=8, wait_seconds=0.0, busy_seconds=0.16, next_ready=True)
    assert sizer.workers == 3
    stats = sizer.stats("adaptive")
    assert stats.workers == 3 and stats.decode_ms == pytest.approx(10.0)
    assert stats.model_ms == pytest.approx(20.0)


def test_sizer_shrinks_after_a_lasting_backlog() -> None:
    sizer = DecodeSizer(device="cpu", start=2, max_workers=8)
    _decodes(sizer, 8, 0.060)
    assert sizer.after_batch(images=8, wait_seconds=0.1, busy_seconds=0.16, next_ready=False) == 6
    for i in range(SHRINK_AFTER - 1):
        _decodes(sizer, 8, 0.010)
        sizer.after_batch(images=8, wait_seconds=0.0, busy_seconds=0.16, next_ready=True)
        assert sizer.workers == 6, i
    sizer.after_batch(images=8, wait_seconds=0.0, busy_seconds=0.16, next_ready=True)
    assert sizer.workers == 5
    assert sizer.decisions[-1].reason == "backlog"
    # A batch that was not ready resets the count.
    sizer.after_batch(images=8, wait_seconds=0.0, busy_seconds=0.16, next_ready=False)
    for _ in range(SHRINK_AFTER - 1):
        sizer.after_batch(images=8, wait_seconds=0.0, busy_seconds=0.16, next_ready=True)
    assert sizer.workers == 5


def test_sizer_respects_the_memory_bound() -> None:
    # Decodes of 300 MB each and a 1 GB budget: at most 3 at once, whatever the timing says.
    sizer = DecodeSizer(device="cpu", start=2, max_workers=8, memory_budget=10**9)
    _decodes(sizer, 8, 0.100, image_bytes=300_000_000)
    assert sizer.after_batch(images=8, wait_seconds=1.0, busy_seconds=0.08, next_ready=False) == 3
    assert sizer.decisions[-1].reason == "memory"


def test_fixed_sizer_never_changes() -> None:
    sizer = DecodeSizer(device="cpu", start=3, max_workers=3, adaptive=False)
    _decodes(sizer, 8, 0.100)
    for _ in range(5):
        assert sizer.after_batch(images=8, wait_seconds=1, busy_seconds=0.1, next_ready=False) == 3
    assert len(sizer.decisions) == 1


def test_gate_limits_concurrency_and_can_be_raised() -> None:
    gate = DecodeGate(1)
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def task() -> None:
        nonlocal peak
        with gate.slot():
            with lock:
                peak = max(peak, gate.active)
            release.wait(5)

    threads = [threading.Thread(target=task) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    assert gate.active == 1 and peak == 1
    gate.set_limit(3)
    time.sleep(0.2)
    assert gate.active == 3 and peak == 3
    release.set()
    for thread in threads:
        thread.join(5)
    assert gate.active == 0


# -- in the pipeline -----------------------------------------------------------------------------
def _inputs(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8) for _ in range(n)]


def test_pipeline_grows_the_pool_when_decoding_is_the_bottleneck(tiny_clip_encoder: Any) -> None:
    """Decodes that take 30 ms of waiting (I/O-like: almost no CPU time, so the first
    estimate is one thread) and a model that takes 20 ms per batch of 8: the model waits,
    the pool grows to its bound, and the results are those of a fixed pool, in order."""
    pipeline = ImagePipeline(tiny_clip_encoder, batch_size=8)
    assert pipeline.adaptive_workers and pipeline.max_workers >= 2
    original = pipeline.prepare_input
    forward = pipeline.forward

    def model(items: list[Any]) -> np.ndarray:
        time.sleep(0.02)
        return forward(items)

    running = 0
    peak = 0
    lock = threading.Lock()

    def slow(source: Any, index: int | None = None) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.03)
        with lock:
            running -= 1
        return original(source, index)

    pipeline.prepare_input = slow  # type: ignore[method-assign]
    pipeline.forward = model  # type: ignore[method-assign]
    reports: list[PipelineProgress] = []
    pipeline.progress_callback = reports.append
    inputs = _inputs(96)
    vectors = np.concatenate([b.vectors for b in pipeline.run(inputs)])
    stats = pipeline.stats
    assert stats.mode == "adaptive"
    assert [(d.reason, d.workers) for d in stats.decisions][1] == ("estimate", 1)
    assert "model waits" in [d.reason for d in stats.decisions]
    assert stats.workers == pipeline.max_workers
    assert peak == pipeline.max_workers  # the gate really let more threads decode
    assert reports[-1].workers == stats.workers and reports[-1].decode == stats
    fixed = ImagePipeline(tiny_clip_encoder, batch_size=8, num_workers=2)
    expected = np.concatenate([b.vectors for b in fixed.run(inputs)])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_explicit_num_workers_is_never_changed(tiny_clip_encoder: Any) -> None:
    pipeline = ImagePipeline(tiny_clip_encoder, batch_size=4, num_workers=3)
    original = pipeline.prepare_input

    def slow(source: Any, index: int | None = None) -> Any:
        time.sleep(0.02)
        return original(source, index)

    pipeline.prepare_input = slow  # type: ignore[method-assign]
    list(pipeline.run(_inputs(24)))
    stats = pipeline.stats
    assert stats.mode == "fixed" and stats.workers == 3 and len(stats.decisions) == 1
    inline = ImagePipeline(tiny_clip_encoder, batch_size=4, num_workers=0)
    list(inline.run(_inputs(5)))
    assert inline.stats.mode == "inline" and inline.stats.workers == 0


def test_the_next_pipeline_starts_from_the_last_decision(tiny_clip_encoder: Any) -> None:
    from langchain_image_embeddings.pipeline import _stream as pipeline_module

    emb = ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=4)
    pipeline_module._LAST_WORKERS[tiny_clip_encoder] = {False: 3}
    emb.embed_images_array(_inputs(8))
    learned = pipeline_module._LAST_WORKERS[tiny_clip_encoder][False]
    pipeline = emb.pipeline()
    list(pipeline.run(_inputs(1)))
    assert pipeline.stats.decisions[0] == SizerDecision(0, learned, "start")
