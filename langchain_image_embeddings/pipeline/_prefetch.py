"""Ordered read-ahead for the pipeline: inputs decoded by a thread pool, taken back in order.

:class:`DecodeQueue` keeps at most ``limit`` inputs in flight (the pipeline's memory bound),
hands out batches in input order, turns unreadable inputs into reported errors
(``on_error="skip"``) or raises the first one, and measures how long the caller waited on
the decode threads: the signal :class:`~langchain_image_embeddings.pipeline._decode_pool.DecodeSizer`
sizes the pool by. Threads beyond the sizer's current choice wait at a
:class:`~langchain_image_embeddings.pipeline._decode_pool.DecodeGate` holding no image.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from langchain_image_embeddings.errors import ImageLoadError, OnError
from langchain_image_embeddings.pipeline._decode_pool import DecodeGate

#: ``(index, input) -> decoded item``, raising :class:`ImageLoadError` for a bad input.
Decode = Callable[[Any, int], Any]


class DecodeQueue:
    """Inputs decoded ahead of the consumer, returned in input order, batch by batch.

    Args:
        inputs: ``(index, input)`` pairs, consumed lazily.
        decode: What a pool thread runs per input (``decode(input, index)``).
        inline: What runs in the calling thread when there is no pool (``workers=0``).
        workers: Pool threads (``0``: decode inline, in :meth:`next_batch`).
        start: Threads allowed to decode at first (see :meth:`set_workers`).
        limit: Inputs in flight at most.
        on_error: ``"raise"``: the first unreadable input's error propagates;
            ``"skip"``: it is returned with the batch.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.pipeline._prefetch import DecodeQueue

            def upper(text, index):
                return text.upper()

            queue = DecodeQueue(enumerate("abc"), upper, upper, 2, 2, 4, "raise")
            try:
                items, indices, errors, waited = queue.next_batch(2)   # ['A', 'B'], [0, 1]
            finally:
                queue.close()
    """

    def __init__(
        self,
        inputs: Iterator[tuple[int, Any]],
        decode: Decode,
        inline: Decode,
        workers: int,
        start: int,
        limit: int,
        on_error: OnError,
    ) -> None:
        self._inputs = inputs
        self._decode = decode
        self._inline = inline
        self._limit = limit
        self._on_error = on_error
        self._gate = DecodeGate(start)
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="imgemb-decode") if workers > 0 else None
        )
        self._pending: deque[tuple[int, Future[Any] | None, Any]] = deque()
        self._exhausted = False

    @property
    def pooled(self) -> bool:
        """Whether inputs are decoded by pool threads (``workers > 0``)."""
        return self._pool is not None

    def set_workers(self, workers: int) -> None:
        """Let ``workers`` pool threads decode at once (the sizer's latest choice)."""
        self._gate.set_limit(workers)

    def _gated(self, source: Any, index: int) -> Any:
        with self._gate.slot():
            return self._decode(source, index)

    def _fill(self) -> None:
        while not self._exhausted and len(self._pending) < self._limit:
            try:
                index, source = next(self._inputs)
            except StopIteration:
                self._exhausted = True
                return
            if self._pool is None:
                self._pending.append((index, None, source))
            else:
                self._pending.append((index, self._pool.submit(self._gated, source, index), None))

    def next_batch(self, size: int) -> tuple[list[Any], list[int], list[ImageLoadError], float]:
        """The next ``size`` inputs in order, topping the read-ahead up as it drains.

        Returns the decoded items, their input indices, the failures (``on_error="skip"``)
        and the seconds spent waiting on decode threads. Empty lists: the inputs are done.
        """
        self._fill()
        items: list[Any] = []
        indices: list[int] = []
        errors: list[ImageLoadError] = []
        waited = 0.0
        while len(items) < size and self._pending:
            index, future, source = self._pending.popleft()
            try:
                if future is None:
                    item = self._inline(source, index)
                elif future.done():
                    item = future.result()
                else:
                    blocked = time.perf_counter()
                    item = future.result()
                    waited += time.perf_counter() - blocked
            except ImageLoadError as err:
                if self._on_error == "raise":
                    raise
                errors.append(err)
            else:
                items.append(item)
                indices.append(index)
            self._fill()
        return items, indices, errors, waited

    def next_batch_ready(self, size: int) -> bool:
        """Whether the whole next batch is already decoded (a backlog: the pool may shrink)."""
        ahead = [future for _, future, _ in itertools.islice(self._pending, size)]
        return len(ahead) == size and all(future is not None and future.done() for future in ahead)

    def close(self) -> None:
        """Cancel what has not started and wait for the running decodes to end."""
        for _, future, _ in self._pending:
            if future is not None:
                future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
