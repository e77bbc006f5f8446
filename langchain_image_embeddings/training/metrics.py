"""Retrieval metrics of fine-tuning: recall@k, and whether a validation split can measure it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from langchain_image_embeddings.training.config import Dataset
from langchain_image_embeddings.training.data import (
    LabeledImages,
)

__all__ = ["check_classes", "evaluate", "recall_at_k", "recall_not_measurable"]


def recall_at_k(
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_labels: Sequence[int],
    key_labels: Sequence[int],
    ks: Sequence[int] = (1, 5),
    *,
    exclude_self: bool = False,
) -> dict[int, float]:
    """Fraction of queries with an item of their label among the ``k`` nearest keys (cosine).

    With ``exclude_self`` (queries are the keys) each query's own row is skipped, and
    queries without another item of their label are not counted.

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> recall_at_k(x, x, [0, 0, 1, 1], [0, 0, 1, 1], ks=(1,), exclude_self=True)
        {1: 1.0}
    """
    q = F.normalize(queries.detach().float().cpu(), dim=-1)
    k_ = F.normalize(keys.detach().float().cpu(), dim=-1)
    sims = q @ k_.T
    qlab = torch.as_tensor(list(query_labels))
    klab = torch.as_tensor(list(key_labels))
    counted = torch.ones(len(q), dtype=torch.bool)
    if exclude_self:
        sims.fill_diagonal_(float("-inf"))
        counts = (qlab[:, None] == klab[None, :]).sum(1) - 1
        counted = counts > 0
    out: dict[int, float] = {}
    if not bool(counted.any()):
        return {k: 0.0 for k in ks}
    for k in ks:
        top = sims.topk(min(k, sims.shape[1]), dim=1).indices
        hit = (klab[top] == qlab[:, None]).any(1)
        out[k] = float(hit[counted].float().mean())
    return out


def check_classes(data: LabeledImages, loss: str = "triplet") -> None:
    """Refuse class-labelled data with fewer than two classes.

    Raises:
        ValueError: One class (or none): nothing to tell apart, and recall would be 1.0
            whatever the model does.
    """
    classes = data.classes
    if len(classes) < 2:
        found = f"only one class ({classes[0]!r})" if classes else "no class"
        raise ValueError(
            f"{found} in the training data: {loss} training on class folders needs at least "
            "2 classes (DIR/<label>/<image>, one folder per label)"
        )


def recall_not_measurable(val: Dataset) -> str | None:
    """Why recall@k cannot be measured on ``val``, or ``None`` when it can.

    Image-to-image recall needs, for some validation image, another image of its class in
    the validation split; text-to-image recall needs at least one pair.

    Example:
        >>> recall_not_measurable(LabeledImages(["a.jpg", "b.jpg"], ["cat", "dog"]))[:40]
        'no validation image has another image of'
    """
    if len(val) == 0:
        return "the validation split is empty"
    if isinstance(val, LabeledImages):
        counts: dict[str, int] = {}
        for label in val.labels:
            counts[label] = counts.get(label, 0) + 1
        if max(counts.values()) < 2:
            return (
                "no validation image has another image of its class in the validation split "
                f"({len(val)} images, {len(counts)} classes, one image each); use more images "
                "per class or a larger validation fraction"
            )
    elif len(set(val.captions)) < 2:
        # Every validation image answers the one caption: recall would read 1.000.
        return (
            f"the validation split holds one distinct caption ({len(val)} pair(s)), so every "
            "image is a hit; use a larger validation fraction"
        )
    return None


def _ids(values: Sequence[str]) -> list[int]:
    index: dict[str, int] = {}
    return [index.setdefault(v, len(index)) for v in values]


def evaluate(images: torch.Tensor, texts: torch.Tensor | None, val: Dataset) -> dict[str, float]:
    if isinstance(val, LabeledImages):
        labels = _ids(val.labels)
        r = recall_at_k(images, images, labels, labels, exclude_self=True)
    else:
        assert texts is not None
        labels = _ids(val.captions)
        r = recall_at_k(texts, images, labels, labels)
    return {"recall_at_1": r[1], "recall_at_5": r[5]}
