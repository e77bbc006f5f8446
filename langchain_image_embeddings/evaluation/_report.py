"""The result of an evaluation: one row per setting, as Markdown, JSON and a PNG plot."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langchain_image_embeddings._atomic import write_atomic
from langchain_image_embeddings.evaluation._metrics import RECALL_KS

__all__ = ["METRIC_NAMES", "EvaluationReport", "EvaluationRow"]

#: The quality metrics of a row, in table order.
METRIC_NAMES: tuple[str, ...] = (*(f"recall@{k}" for k in RECALL_KS), "MRR", "nDCG@10")


@dataclass
class EvaluationRow:
    """The measurements of one setting (model x runtime x precision x index).

    Attributes:
        name: The setting's label.
        model: Encoder spec; ``model_kwargs`` its options.
        runtime, precision: Where and how the model ran.
        index: The index kind asked for; ``index_built`` what the store searched with
            (a FAISS store searches exactly, ``flat``, below 1,000 vectors).
        metrics: Mean ``recall@1/5/10``, ``MRR`` and ``nDCG@10`` over the queries.
        images_per_second: Corpus embedding throughput, after one warm-up image (``None``
            when an existing store was evaluated: its corpus was embedded before).
        latency_ms_p50, latency_ms_p95: Per query, embedding the query plus the search.
        corpus_size: Images in the store; ``failures`` those that could not be embedded.
        queries: How many queries were asked.
        ranks: Per query, the rank of the first relevant result (``None``: not in the top 10).
    """

    name: str
    model: str
    runtime: str
    precision: str
    index: str
    index_built: str
    metrics: dict[str, float]
    images_per_second: float | None
    latency_ms_p50: float
    latency_ms_p95: float
    corpus_size: int
    queries: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ranks: list[int | None] = field(default_factory=list)


@dataclass
class EvaluationReport:
    """Every row of one evaluation run, and how the queries were made.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.evaluation import evaluate

            report = evaluate("photos", models=["timm:efficientnet_lite0"])
            print(report.to_markdown())
            report.save_json("eval.json")
            report.save_plot("eval.png")
    """

    mode: str
    corpus: str
    corpus_size: int
    queries: int
    seed: int
    rows: list[EvaluationRow]
    query_origins: list[str] = field(default_factory=list)

    def best(self, metric: str = "MRR") -> EvaluationRow:
        """The row with the highest ``metric``."""
        return max(self.rows, key=lambda row: row.metrics[metric])

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready values."""
        return asdict(self)

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` (atomically)."""
        write_atomic(Path(path), (self.to_json() + "\n").encode("utf-8"))
        return Path(path)

    def to_markdown(self) -> str:
        """One table row per setting: quality, throughput and latency."""
        header = ["#", "setting", "runtime", "precision", "index"]
        header += [*METRIC_NAMES, "img/s", "p50 ms", "p95 ms"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for number, row in enumerate(self.rows, start=1):
            index = (
                row.index if row.index == row.index_built else f"{row.index} ({row.index_built})"
            )
            speed = "-" if row.images_per_second is None else f"{row.images_per_second:.1f}"
            cells = [str(number), row.name, row.runtime, row.precision, index]
            cells += [f"{row.metrics[m]:.3f}" for m in METRIC_NAMES]
            cells += [speed, f"{row.latency_ms_p50:.1f}", f"{row.latency_ms_p95:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def save_markdown(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_markdown` to ``path`` (atomically)."""
        write_atomic(Path(path), (self.to_markdown() + "\n").encode("utf-8"))
        return Path(path)

    def save_plot(
        self, path: str | os.PathLike[str], *, quality: str = "MRR", speed: str = "throughput"
    ) -> Path:
        """A PNG of quality against speed, one numbered point per row (drawn with Pillow).

        Args:
            path: The PNG to write.
            quality: The metric on the vertical axis (one of :data:`METRIC_NAMES`).
            speed: ``"throughput"`` (corpus images/s) or ``"latency"`` (query p50, ms).
        """
        from langchain_image_embeddings.evaluation._plot import draw_plot

        if quality not in METRIC_NAMES:
            raise ValueError(f"quality must be one of {METRIC_NAMES}, got {quality!r}")
        points = []
        for row in self.rows:
            x = row.images_per_second if speed == "throughput" else row.latency_ms_p50
            if speed not in ("throughput", "latency"):
                raise ValueError(f"speed must be 'throughput' or 'latency', got {speed!r}")
            points.append((row.name + f" · {row.runtime} · {row.index}", x, row.metrics[quality]))
        x_label = "corpus images/s (higher is faster)" if speed == "throughput" else "query p50 ms"
        png = draw_plot(
            points,
            title=f"{quality} against speed ({self.mode}, {self.queries} queries, "
            f"{self.corpus_size} images)",
            x_label=x_label,
            y_label=quality,
        )
        write_atomic(Path(path), png)
        return Path(path)
