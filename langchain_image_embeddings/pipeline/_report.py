"""What the pipeline reports: each batch (:class:`BatchResult`, its failures included when
``on_error="skip"``) and the progress after it (:class:`PipelineProgress`, shown as a tqdm
bar and/or passed to a callback by :class:`ProgressReporter`).

:class:`BatchResult` and :class:`PipelineProgress` are public through
:mod:`langchain_image_embeddings.pipeline`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.pipeline._decode_pool import DecodeStats

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class PipelineProgress:
    """A progress report, passed to ``progress_callback`` after every batch.

    Attributes:
        done: Inputs embedded so far.
        failed: Inputs that could not be read so far (``on_error="skip"``).
        total: Number of inputs when known (a sequence), else ``None``.
        elapsed: Seconds since the pipeline started.
        images_per_second: ``done / elapsed``.
        workers: Decode threads in use after this batch.
        decode: The decode stage's decisions and measurements (see :class:`DecodeStats`).
    """

    done: int
    failed: int
    total: int | None
    elapsed: float
    images_per_second: float
    workers: int = 0
    decode: DecodeStats | None = None


@dataclass
class BatchResult:
    """One batch out of :meth:`ImagePipeline.run`.

    Attributes:
        indices: Input positions of the rows of ``vectors``, ascending.
        vectors: ``float32`` array ``(len(indices), dim)``.
        errors: Inputs that failed since the previous batch (``on_error="skip"`` only).
        sha256: With ``run(..., hash_inputs=True)``: per row, the hex SHA-256 of the
            encoded bytes its pixels were decoded from (``None`` for a PIL image or an
            array); ``None`` when not asked for.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders import create_encoder
            from langchain_image_embeddings.pipeline import ImagePipeline

            pipeline = ImagePipeline(create_encoder("timm:efficientnet_lite0"))
            for batch in pipeline.run(["a.jpg", "b.jpg"], hash_inputs=True):
                print(batch.indices, batch.vectors.shape, batch.sha256)
    """

    indices: list[int]
    vectors: np.ndarray
    errors: list[ImageLoadError] = field(default_factory=list)
    sha256: list[str | None] | None = None


class ProgressReporter:
    """Counts a run's batches and reports them: a tqdm bar (``show_progress``) and/or
    ``callback(PipelineProgress)`` after every batch.

    Args:
        total: Number of inputs when known, else ``None``.
        show_progress: Show a tqdm bar with images/s.
        callback: Called with a :class:`PipelineProgress` after every batch.
        stats: Returns the decode stage's current :class:`DecodeStats`.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.pipeline._decode_pool import DecodeStats
            from langchain_image_embeddings.pipeline._report import ProgressReporter

            stats = DecodeStats("inline", 0, 0, 0.0, 0.0, 0.0, ())
            seen = []
            reporter = ProgressReporter(3, False, seen.append, lambda: stats)
            reporter.batch(embedded=2, failed=1)
            reporter.close()
            print(seen[0].done, seen[0].failed)   # 2 1
    """

    def __init__(
        self,
        total: int | None,
        show_progress: bool,
        callback: Callable[[PipelineProgress], None] | None,
        stats: Callable[[], DecodeStats],
    ) -> None:
        self.total = total
        self.callback = callback
        self.stats = stats
        self.done = self.failed = 0
        self.started = time.perf_counter()
        self.bar: Any = None
        if show_progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="img", desc="embedding", dynamic_ncols=True)

    def batch(self, embedded: int, failed: int) -> None:
        """Count one batch (``embedded`` vectors, ``failed`` inputs) and report it."""
        self.done += embedded
        self.failed += failed
        if self.bar is not None:
            self.bar.update(embedded + failed)
            if self.failed:
                self.bar.set_postfix(failed=self.failed, refresh=False)
        if self.callback is not None:
            elapsed = time.perf_counter() - self.started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            stats = self.stats()
            self.callback(
                PipelineProgress(
                    self.done, self.failed, self.total, elapsed, rate, stats.workers, stats
                )
            )

    def close(self) -> None:
        """Close the bar, if any."""
        if self.bar is not None:
            self.bar.close()
