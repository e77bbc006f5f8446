"""Fine-tuning configuration and results: :class:`FitConfig`, :class:`EpochMetrics`, :class:`FitResult`."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_image_embeddings.training.data import (
    CaptionedImages,
    LabeledImages,
)

if TYPE_CHECKING:
    from langchain_image_embeddings.encoders.local import FineTunedEncoder

# This module imports no torch: the ``imgemb`` parser derives the finetune flags from
# :class:`FitConfig` on every command, and ``imgemb --help`` must not wait for torch.
Mode = Literal["head", "partial", "full"]
LossName = Literal["triplet", "infonce"]
Distance = Literal["euclidean", "cosine"]
Mining = Literal["all", "hard", "semihard"]
Dataset = LabeledImages | CaptionedImages

_DEFAULT_LR: dict[str, float] = {"head": 1e-3, "partial": 1e-4, "full": 2e-5}


@dataclass
class FitConfig:
    """Options of :func:`fit` (every field can also be passed to :func:`fit` as a keyword).

    Attributes:
        loss: ``"triplet"`` (labelled images) or ``"infonce"`` (captions, or two augmented
            views of each image for labelled/unlabelled images).
        mode: ``"head"``, ``"partial"`` or ``"full"``.
        epochs: Maximum number of epochs.
        batch_size: Images per step.
        lr: Peak learning rate; default 1e-3 (head), 1e-4 (partial), 2e-5 (full).
        weight_decay: AdamW weight decay (not applied to biases, norms and the temperature).
        warmup_ratio: Fraction of the steps with a linear warm-up, then cosine decay to 0.
        grad_clip: Max gradient norm (``None`` disables clipping).
        embedding_dim: Projection head output size; in head mode ``None`` means
            ``min(256, base dim)``; in partial/full mode ``None`` means no head.
        hidden_dim: Hidden width of the head (default: ``embedding_dim``).
        unfreeze_blocks: Blocks per tower trained in partial mode.
        margin: Triplet margin.
        distance: Triplet distance (``"euclidean"`` on normalised vectors, or ``"cosine"``).
        mining: Triplet mining (``"all"``, ``"hard"``, ``"semihard"``).
        temperature: Initial InfoNCE temperature (CLIP bases start from their own).
        samples_per_class: ``K`` of the P x K batch sampler used with the triplet loss.
        augment: Random resized crop / flip / colour jitter on training images.
        flip: Horizontal flips (turn off when captions say left/right).
        color_jitter: Colour jitter strength (0 disables).
        crop_scale: Area range of the random resized crop.
        head_views: Feature views cached per training image in head mode (the first is the
            plain image, the others augmented); InfoNCE on labelled images uses at least 2.
        seed: Seeds Python, torch and the samplers.
        patience: Stop after this many epochs without a better validation recall@k.
        early_stopping_k: The ``k`` of that recall.
        restore_best: Return the weights of the epoch with the best validation recall@k
            (else those of the last epoch run).
        amp: Mixed precision (autocast) on CUDA; ignored on CPU (slow there).
        show_progress: tqdm progress bar.
        metrics_path: Write the metrics as JSON here after every epoch.
    """

    loss: LossName = "triplet"
    mode: Mode = "head"
    epochs: int = 10
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_clip: float | None = 1.0
    embedding_dim: int | None = None
    hidden_dim: int | None = None
    unfreeze_blocks: int = 2
    margin: float = 0.2
    distance: Distance = "euclidean"
    mining: Mining = "semihard"
    temperature: float = 0.07
    samples_per_class: int = 4
    augment: bool = True
    flip: bool = True
    color_jitter: float = 0.2
    crop_scale: tuple[float, float] = (0.5, 1.0)
    head_views: int = 1
    seed: int = 0
    patience: int | None = None
    early_stopping_k: int = 1
    restore_best: bool = True
    amp: bool = True
    show_progress: bool = True
    metrics_path: str | None = None

    def __post_init__(self) -> None:
        if self.loss not in ("triplet", "infonce"):
            raise ValueError(f"unknown loss {self.loss!r}; choose 'triplet' or 'infonce'")
        if self.mode not in ("head", "partial", "full"):
            raise ValueError(f"unknown mode {self.mode!r}; choose 'head', 'partial' or 'full'")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
        self._check_sampling()

    def _check_sampling(self) -> None:
        """Values that would train nothing (or NaN) without an error saying so."""
        if self.loss == "triplet" and self.samples_per_class < 2:
            # K = 1 puts no two images of a label in a batch: no positive, loss 0, no learning.
            raise ValueError(
                f"samples_per_class must be >= 2 with the triplet loss (each batch needs "
                f"images of the same label), got {self.samples_per_class}"
            )
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(
                f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {self.crop_scale}"
            )
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    @property
    def learning_rate(self) -> float:
        """The peak learning rate (the mode's default when :attr:`lr` is ``None``)."""
        return self.lr if self.lr is not None else _DEFAULT_LR[self.mode]


@dataclass
class EpochMetrics:
    """Metrics after one epoch (validation recall is ``None`` without validation data)."""

    epoch: int
    loss: float
    recall_at_1: float | None
    recall_at_5: float | None
    lr: float
    seconds: float


@dataclass
class FitResult:
    """What :func:`fit` returns: the fine-tuned encoder and its metrics.

    Attributes:
        encoder: The trained model (use it directly, or :meth:`save_pretrained`).
        baseline: Validation recall@1/@5 of the starting model (base features; empty
            without validation data, or when recall is not measurable on it).
        history: One :class:`EpochMetrics` per epoch run.
        best_epoch: The epoch whose weights ``encoder`` holds.
        config: The options used.
        extra: More metrics: ``train_size``, ``val_size``, ``temperature`` and, when the
            validation split cannot measure recall (see :func:`recall_not_measurable`),
            ``recall_not_measurable`` with the reason (recall is then ``None`` throughout).

    Example:
        .. code-block:: python

            result = fit("timm:efficientnet_lite0", train, val, loss="triplet", mode="head")
            print(result.baseline["recall_at_1"], result.history[-1].recall_at_1)
            result.save_pretrained("my-model")
    """

    encoder: FineTunedEncoder
    baseline: dict[str, float]
    history: list[EpochMetrics]
    best_epoch: int
    config: FitConfig
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """JSON-serialisable metrics (what ``metrics_path`` receives)."""
        return {
            "baseline": self.baseline,
            "history": [asdict(m) for m in self.history],
            "best_epoch": self.best_epoch,
            "config": asdict(self.config),
            **self.extra,
        }

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Save the model (safetensors + config) with the training metadata."""
        from langchain_image_embeddings.encoders.local import save_pretrained

        return save_pretrained(self.encoder, directory, training=self.metrics())
