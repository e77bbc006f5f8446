"""Retrieval evaluation: which model, runtime, precision and index is best on your images.

:func:`evaluate` runs queries against a corpus (a folder of images) and reports recall@1/5/10,
MRR, nDCG@10, embedding throughput and query latency, one row per setting, as Markdown,
JSON and a PNG plot. Queries come from a labelled file (JSONL / CSV), a class folder, or
with no labels at all, from augmented copies of the images (each answered by its original).

Example:
    .. code-block:: python

        from langchain_image_embeddings.evaluation import evaluate, settings_grid

        report = evaluate(
            "photos",  # label-free: augmented copies of each photo find their original
            settings=settings_grid(["timm:efficientnet_lite0"], runtimes=["torch", "onnx"]),
        )
        print(report.to_markdown())
        report.save_plot("eval.png")
"""

from __future__ import annotations

from langchain_image_embeddings.evaluation._augment import (
    Augmentation,
    augment,
    label_free_queries,
)
from langchain_image_embeddings.evaluation._metrics import (
    CUTOFF,
    RECALL_KS,
    mean_metrics,
    query_metrics,
)
from langchain_image_embeddings.evaluation._queries import (
    Corpus,
    CorpusItem,
    Query,
    QueryFileError,
    class_queries,
    list_corpus,
    load_queries,
)
from langchain_image_embeddings.evaluation._report import (
    METRIC_NAMES,
    EvaluationReport,
    EvaluationRow,
)
from langchain_image_embeddings.evaluation._run import EvalSetting, evaluate, settings_grid

__all__ = [
    "CUTOFF",
    "METRIC_NAMES",
    "RECALL_KS",
    "Augmentation",
    "Corpus",
    "CorpusItem",
    "EvalSetting",
    "EvaluationReport",
    "EvaluationRow",
    "Query",
    "QueryFileError",
    "augment",
    "class_queries",
    "evaluate",
    "label_free_queries",
    "list_corpus",
    "load_queries",
    "mean_metrics",
    "query_metrics",
    "settings_grid",
]
