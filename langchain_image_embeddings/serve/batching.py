"""Dynamic micro-batching: queries that arrive together share one model call.

Inference servers batch this way (a queue, a small wait bound, a batch cap): the first query
waits at most ``max_wait`` seconds for others; whatever has arrived by then (up to
``max_batch``) goes through the model at once. On a CPU a batch of 16 costs far less than 16
calls, so 16 clients get more queries per second than one lock serialising single calls.
Pure Python (threads), no FastAPI.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.batching import MicroBatcher

        batcher = MicroBatcher(lambda items: [x * 2 for x in items], max_batch=16)
        batcher.submit(21)  # 42, computed in a batch with whatever else arrived
        batcher.close()
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Runs ``fn`` on batches of submitted items on one worker thread.

    Args:
        fn: Maps a list of items to a sequence of results, one per item, in order.
        max_batch: Most items per call (``1``: no batching, one call per item).
        max_wait: Seconds the first item of a batch waits for more.

    Attributes:
        batches: Sizes of the batches run so far (the last 1,000), for tests and benchmarks.

    Example:
        .. code-block:: python

            batcher = MicroBatcher(lambda xs: [x + 1 for x in xs], max_batch=8, max_wait=0.005)
            assert batcher.submit(1) == 2
    """

    def __init__(
        self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 16, max_wait: float = 0.005
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.batches: list[int] = []
        self._queue: queue.Queue[tuple[T, Future[R]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="imgemb-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: T) -> R:
        """``fn``'s result for ``item`` (blocks until its batch has run; re-raises its error)."""
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future.result()

    def close(self) -> None:
        """Stop the worker after the queued items."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            stop = False
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    nxt = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._call(batch)
            if stop:
                return

    def _call(self, batch: list[tuple[T, Future[R]]]) -> None:
        self.batches = [*self.batches[-999:], len(batch)]
        try:
            results = self.fn([item for item, _ in batch])
        except BaseException as exc:  # every waiting request gets the error
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
