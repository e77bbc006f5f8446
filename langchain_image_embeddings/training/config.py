"""Fine-tuning configuration and results: :class:`FitConfig`, :class:`EpochMetrics`, :class:`FitResult`."""

from __future__ import annotations

import math
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

__all__ = [
    "Dataset",
    "Distance",
    "EpochMetrics",
    "FitConfig",
    "FitResult",
    "LossName",
    "Mining",
    "Mode",
]


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
            ``min(256, base dim)``; in partial/full mode ``None`` means no head (caption
            pairs get a text head of the same size too).
        hidden_dim: Hidden width of the head (default: ``embedding_dim``).
        unfreeze_blocks: Blocks per tower trained in partial mode.
        margin: Triplet margin.
        distance: Triplet distance (``"euclidean"`` on normalised vectors, or ``"cosine"``).
        mining: Triplet mining (``"all"``, ``"hard"``, ``"semihard"``).
        temperature: Initial InfoNCE temperature (CLIP bases start from their own).
        samples_per_class: ``K`` of the P x K batch sampler used with the triplet loss
            (at least 2, and ``batch_size`` must hold two groups of ``K``).
        augment: Random resized crop / flip / colour jitter on training images.
        flip: Horizontal flips (turn off when captions say left/right).
        color_jitter: Colour jitter strength (0 disables).
        crop_scale: Area range of the random resized crop.
        head_views: Feature views cached per training image in head mode (the first is the
            plain image, the others augmented); InfoNCE on labelled images uses at least 2.
        seed: Seeds Python, torch and the samplers.
        patience: Stop after this many epochs without a better validation recall@k.
        early_stopping_k: The ``k`` of that recall (1 or 5, the two measured).
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
        if self.loss == "triplet" and self.batch_size < 2 * self.samples_per_class:
            # A batch of one K-group holds one label: no negative, loss 0, no learning.
            raise ValueError(
                f"batch_size ({self.batch_size}) must hold at least two labels of "
                f"samples_per_class ({self.samples_per_class}) images with the triplet loss "
                f"(each batch needs a negative): use batch_size >= "
                f"{2 * self.samples_per_class} or a smaller samples_per_class"
            )
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(
                f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {self.crop_scale}"
            )
        if not 0 < self.temperature < math.inf:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        self._check_numbers()

    def _check_numbers(self) -> None:
        """Out-of-range options, refused here rather than after the model has loaded."""
        checks: list[tuple[bool, str]] = [
            (self.lr is None or 0 < self.lr < math.inf, "lr must be > 0"),
            (0 <= self.weight_decay < math.inf, "weight_decay must be >= 0"),
            (0 <= self.warmup_ratio <= 1, "warmup_ratio must be in [0, 1]"),
            (self.grad_clip is None or 0 < self.grad_clip < math.inf, "grad_clip must be > 0"),
            (self.embedding_dim is None or self.embedding_dim >= 1, "embedding_dim must be >= 1"),
            (self.hidden_dim is None or self.hidden_dim >= 1, "hidden_dim must be >= 1"),
            (self.unfreeze_blocks >= 1, "unfreeze_blocks must be >= 1"),
            (0 <= self.margin < math.inf, "margin must be >= 0"),
            (self.distance in ("euclidean", "cosine"), "distance must be 'euclidean' or 'cosine'"),
            (
                self.mining in ("all", "hard", "semihard"),
                "mining must be 'all', 'hard' or 'semihard'",
            ),
            (0 <= self.color_jitter < math.inf, "color_jitter must be >= 0"),
            (self.head_views >= 1, "head_views must be >= 1"),
            # patience=0 stopped after the first epoch even while recall improved.
            (self.patience is None or self.patience >= 1, "patience must be >= 1 (or None)"),
            # Only recall@1 and @5 are measured; another k silently stopped on recall@1.
            (self.early_stopping_k in (1, 5), "early_stopping_k must be 1 or 5"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}, got {self._field_of(message)}")

    def _field_of(self, message: str) -> Any:
        return getattr(self, message.split(" ", 1)[0])

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
