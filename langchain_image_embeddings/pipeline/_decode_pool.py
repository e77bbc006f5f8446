"""Decode threads that size themselves from measured decode and model times.

The right number of decode threads depends on the ratio of two costs that only a
measurement knows: how long one input takes to decode (a 12 MP JPEG ~32 ms, a 1080p one
~8 ms, a GPU-bound read of the bytes well under 1 ms) and how long the model takes per
image (ViT-B/32 on 2 CPU cores ~90 ms, EfficientNet-Lite0 ~18 ms, either on a GPU
<1 ms). With a fixed rule, light models starved: Lite0 on 12 MP JPEGs ran 14.8 img/s
with the old default (1 worker on 2 cores) and 27.7 img/s with 4.

:class:`DecodeSizer` makes the decision in two steps:

1. **Estimate** after the first batch (raised after the second, whose forward pass is
   free of one-time warm-up costs): ``workers = ceil(headroom * decode_cpu / model)``,
   where ``decode_cpu`` is the CPU time one decode takes (``time.thread_time`` in the
   worker, so it is not inflated when threads share cores) and ``model`` the main thread's
   time per image (collate + forward). On a CPU model the decode threads and torch's
   intra-op threads time-share the same cores, and the model's parallel regions only
   progress as fast as their most-preempted thread, so decoding needs more threads than
   the plain ratio: ``headroom`` is 2 there and 1.25 on an accelerator. (The first
   forward pass also pays one-time costs, and other processes may share the cores: the
   estimate is a start, the feedback corrects it.)
2. **Feedback** while streaming, after every later batch: if the main thread waited on decoding
   for more than :data:`GROW_WAIT` of its time, the pool grows in proportion to the wait
   (and never shrinks back below that size, which stops oscillation); if it never waited
   and the whole next batch was already decoded for :data:`SHRINK_AFTER` batches in a
   row, it shrinks by one.

The size always stays within ``[1, max_workers]`` (:func:`max_decode_workers`: twice the
cores, at most 16, on CPU; the cores, at most 32, for an accelerator) and within a memory
bound: workers times the largest decoded image seen must fit :data:`DECODE_MEMORY_BUDGET`.
Threads beyond the current size exist but wait at a :class:`DecodeGate` (they hold no
image), so resizing costs nothing and never reorders results.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

#: Grow when the model waited on decoding for more than this share of its time.
GROW_WAIT = 0.10
#: Shrink after this many batches in a row without waiting and with the next batch ready.
SHRINK_AFTER = 3
#: Bytes that the images being decoded at once may take (workers x largest decode seen).
DECODE_MEMORY_BUDGET = 2 * 1024**3
#: Decode threads per model thread needed, beyond the plain time ratio (see module docs).
CPU_HEADROOM = 2.0
ACCELERATOR_HEADROOM = 1.25

SizingMode = Literal["adaptive", "fixed", "inline"]


def max_decode_workers(device: str = "cpu", cpus: int | None = None) -> int:
    """The most decode threads the sizer may use.

    On a CPU model, decode threads time-share the cores with torch's threads, so more
    threads than cores can help a light model (4 threads were best on 2 cores for Lite0);
    for an accelerator, a decode thread per core.

    Example:
        >>> max_decode_workers("cpu", cpus=2), max_decode_workers("cuda", cpus=16)
        (4, 16)
    """
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    if device.startswith(("cuda", "mps")):
        return max(2, min(32, cores))
    return max(2, min(16, 2 * cores))


def start_workers(device: str = "cpu", cpus: int | None = None) -> int:
    """Decode threads before anything is measured: one per core (within
    :func:`max_decode_workers`). Until the first batch is decoded the model has nothing to
    do, so every core can decode; the first measurement then sets the size.

    Example:
        >>> start_workers("cpu", cpus=2)
        2
    """
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(cores, max_decode_workers(device, cores)))


def estimate_workers(
    decode_seconds: float, model_seconds: float, *, device: str, max_workers: int
) -> int:
    """Decode threads that keep the model busy: ``ceil(headroom * decode / model)``.

    Args:
        decode_seconds: CPU time of one decode (per input).
        model_seconds: The main thread's time per image (collate + forward).
        device: The model's device (``"cpu"`` adds time-sharing headroom).
        max_workers: Upper bound.

    Example:
        >>> estimate_workers(0.032, 0.018, device="cpu", max_workers=4)   # Lite0, 12 MP
        4
        >>> estimate_workers(0.025, 0.090, device="cpu", max_workers=4)   # ViT-B/32
        1
    """
    if model_seconds <= 0:
        return max_workers
    headroom = ACCELERATOR_HEADROOM if device.startswith(("cuda", "mps")) else CPU_HEADROOM
    wanted = math.ceil(headroom * decode_seconds / model_seconds - 1e-9)
    return max(1, min(max_workers, wanted))


class DecodeGate:
    """Lets at most ``limit`` decode tasks run at once; the limit may change at any time.

    Waiters are woken in arrival order (CPython's ``Condition`` is FIFO), so inputs are
    still decoded roughly in submission order after a resize.

    Example:
        >>> gate = DecodeGate(2)
        >>> with gate.slot():
        ...     gate.active
        1
    """

    def __init__(self, limit: int) -> None:
        self._cond = threading.Condition()
        self._limit = max(1, limit)
        self._active = 0

    @property
    def limit(self) -> int:
        """Tasks allowed to run at once."""
        return self._limit

    @property
    def active(self) -> int:
        """Tasks running now."""
        return self._active

    def set_limit(self, limit: int) -> None:
        """Change the limit; running tasks finish, waiting ones start when allowed."""
        with self._cond:
            self._limit = max(1, limit)
            self._cond.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` slots for the duration of the block."""
        with self._cond:
            while self._active >= self._limit:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify()


@dataclass(frozen=True)
class SizerDecision:
    """One change of the decode pool's size.

    Attributes:
        batch: Batches completed when the decision was made.
        workers: The new number of decode threads.
        reason: Why (``"start"``, ``"estimate"``, ``"model waits"``, ``"backlog"``,
            ``"memory"``).
    """

    batch: int
    workers: int
    reason: str


@dataclass(frozen=True)
class DecodeStats:
    """What the decode stage did: the sizer's decisions and the measured costs.

    Attributes:
        mode: ``"adaptive"`` (sized by measurement), ``"fixed"`` (explicit
            ``num_workers``) or ``"inline"`` (``num_workers=0``).
        workers: Decode threads in use now.
        max_workers: Upper bound the sizer may use.
        decode_ms: Mean CPU milliseconds per decode in the workers (recent batches).
        model_ms: Mean main-thread milliseconds per image for collate + forward.
        wait_fraction: Share of the main thread's time spent waiting on decoding in the
            last batch.
        decisions: Every size change, the first being the starting size.
        gpu_decode: Whether JPEGs are decoded on the model's device.
        device_decoded: Inputs decoded on the model's device so far.
        cpu_fallbacks: JPEGs the device decoder rejected, decoded on the CPU instead.
    """

    mode: SizingMode
    workers: int
    max_workers: int
    decode_ms: float
    model_ms: float
    wait_fraction: float
    decisions: tuple[SizerDecision, ...]
    gpu_decode: bool = False
    device_decoded: int = 0
    cpu_fallbacks: int = 0


class DecodeSizer:
    """Decides how many decode threads run, from measured decode and model times.

    Workers call :meth:`record_decode` (thread-safe); the main thread calls
    :meth:`after_batch` once per batch and applies the size it returns. With
    ``adaptive=False`` the size never changes (an explicit ``num_workers``).

    Args:
        device: The model's device.
        start: Decode threads before anything is measured.
        max_workers: Upper bound (see :func:`max_decode_workers`).
        adaptive: Whether measurements may change the size.
        memory_budget: Bytes the images being decoded at once may take.

    Example:
        >>> sizer = DecodeSizer(device="cpu", start=1, max_workers=4)
        >>> for _ in range(8):
        ...     sizer.record_decode(cpu_seconds=0.032, image_bytes=2_250_000)
        >>> sizer.after_batch(images=8, wait_seconds=0.20, busy_seconds=0.144, next_ready=False)
        4
    """

    def __init__(
        self,
        *,
        device: str,
        start: int,
        max_workers: int,
        adaptive: bool = True,
        memory_budget: int = DECODE_MEMORY_BUDGET,
    ) -> None:
        self.device = device
        self.max_workers = max(1, max_workers)
        self.adaptive = adaptive
        self.memory_budget = memory_budget
        self.workers = max(1, min(start, self.max_workers)) if adaptive else max(0, start)
        self._lock = threading.Lock()
        self._decode_cpu = 0.0
        self._decodes = 0
        self._peak_bytes = 0
        self._recent_decode = 0.0
        self._batches = 0
        self._model_per_image: float | None = None
        self._wait_fraction = 0.0
        self._floor = 1
        self._calm = 0
        self.decisions: list[SizerDecision] = [SizerDecision(0, self.workers, "start")]

    # -- called from decode threads ---------------------------------------------------------
    def record_decode(self, cpu_seconds: float, image_bytes: int = 0) -> None:
        """Record one finished decode: its CPU time and the decoded image's bytes."""
        with self._lock:
            self._decode_cpu += cpu_seconds
            self._decodes += 1
            if image_bytes > self._peak_bytes:
                self._peak_bytes = image_bytes

    # -- called from the main thread --------------------------------------------------------
    def after_batch(
        self, *, images: int, wait_seconds: float, busy_seconds: float, next_ready: bool
    ) -> int:
        """Account one batch and return the number of decode threads to use now.

        Args:
            images: Images in the batch (0 for a batch of failures only).
            wait_seconds: Time the main thread blocked on decode results for it.
            busy_seconds: Time the main thread spent on it otherwise (collate + forward).
            next_ready: Whether the whole next batch was already decoded when this one
                was done (decoding is ahead).
        """
        peak = self._account(images, wait_seconds, busy_seconds)
        if not self.adaptive:
            return self.workers
        workers, reason = self._proposal(wait_seconds + busy_seconds, busy_seconds, next_ready)
        workers = max(1, min(workers, self.max_workers))
        bound = self._memory_bound(peak)
        if workers > bound:
            workers, reason = bound, "memory"
        if workers != self.workers:
            self.workers = workers
            self.decisions.append(SizerDecision(self._batches, workers, reason))
        return self.workers

    def _account(self, images: int, wait_seconds: float, busy_seconds: float) -> int:
        """Fold one batch into the measurements; returns the peak decoded bytes seen."""
        with self._lock:
            decodes, decode_cpu = self._decodes, self._decode_cpu
            self._decodes, self._decode_cpu = 0, 0.0
            peak = self._peak_bytes
        self._batches += 1
        if decodes:
            self._recent_decode = decode_cpu / decodes
        total = wait_seconds + busy_seconds
        self._wait_fraction = wait_seconds / total if total > 0 else 0.0
        if images > 0:
            per_image = busy_seconds / images
            # The first forward pays one-time costs (allocator, kernel selection): keep the
            # smallest per-image time seen, refreshed by a slow average so drift shows.
            previous = self._model_per_image
            self._model_per_image = (
                per_image if previous is None else min(per_image, 0.7 * previous + 0.3 * per_image)
            )
        return peak

    def _proposal(self, total: float, busy_seconds: float, next_ready: bool) -> tuple[int, str]:
        """The thread count the measurements call for, and why (``""``: no change)."""
        workers, reason = self.workers, ""
        estimate = 0
        if self._batches <= 2 and self._model_per_image is not None and self._recent_decode > 0:
            estimate = estimate_workers(
                self._recent_decode,
                self._model_per_image,
                device=self.device,
                max_workers=self.max_workers,
            )
        if self._batches == 1 and estimate:
            workers, reason = estimate, "estimate"
        elif self._wait_fraction > GROW_WAIT and busy_seconds > 0:
            # The model waited: decoding must go faster by about total/busy.
            self._floor = max(self._floor, min(self.max_workers, self.workers + 1))
            workers = max(self.workers + 1, math.ceil(self.workers * total / busy_seconds))
            workers = min(workers, 2 * self.workers)
            reason = "model waits"
            self._calm = 0
        elif estimate > self.workers:
            # The second forward pass is free of the first one's warm-up costs: its
            # (smaller) model time can only call for more threads.
            workers, reason = estimate, "estimate"
        elif self._wait_fraction < 0.01 and next_ready:
            self._calm += 1
            if self._calm >= SHRINK_AFTER and self.workers > self._floor:
                workers, reason = self.workers - 1, "backlog"
                self._calm = 0
        else:
            self._calm = 0
        return workers, reason

    def _memory_bound(self, peak_bytes: int) -> int:
        if peak_bytes <= 0:
            return self.max_workers
        return max(1, min(self.max_workers, self.memory_budget // peak_bytes))

    def stats(
        self,
        mode: SizingMode,
        *,
        gpu_decode: bool = False,
        device_decoded: int = 0,
        cpu_fallbacks: int = 0,
    ) -> DecodeStats:
        """A snapshot of the decisions and measurements."""
        model = self._model_per_image or 0.0
        return DecodeStats(
            mode=mode,
            workers=self.workers,
            max_workers=self.max_workers,
            decode_ms=1000.0 * self._recent_decode,
            model_ms=1000.0 * model,
            wait_fraction=self._wait_fraction,
            decisions=tuple(self.decisions),
            gpu_decode=gpu_decode,
            device_decoded=device_decoded,
            cpu_fallbacks=cpu_fallbacks,
        )
