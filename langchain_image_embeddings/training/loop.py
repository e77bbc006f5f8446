"""The training loop: fine-tune an encoder (or only a projection head) for retrieval.

Modes:

- ``"head"``: the backbone is frozen; a projection head (``Linear -> ReLU -> Linear``) is
  trained on cached backbone features, so CPU training takes seconds. For caption data a
  second head maps text features to the same space.
- ``"partial"``: the last ``unfreeze_blocks`` blocks of each tower (and the layers after
  them: final norm, projection) are trained, the rest is frozen.
- ``"full"``: every weight is trained (small learning rate).

AdamW, cosine schedule with linear warm-up, gradient clipping, autocast on CUDA, seeded,
early stopping on validation recall@k, per-epoch metrics (loss, recall@1, recall@5).
"""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any

import torch

from langchain_image_embeddings.encoders.base import ImageEncoder
from langchain_image_embeddings.encoders.local import FineTunedEncoder
from langchain_image_embeddings.training.config import (
    Dataset,
    EpochMetrics,
    FitConfig,
    FitResult,
    LossName,
    Mode,
)
from langchain_image_embeddings.training.data import (
    CaptionedImages,
    LabeledImages,
)
from langchain_image_embeddings.training.metrics import (
    check_classes,
    recall_at_k,
    recall_not_measurable,
)
from langchain_image_embeddings.training.sampling import pk_batches, random_batches
from langchain_image_embeddings.training.trainers import HeadTrainer, TowerTrainer

if TYPE_CHECKING:
    from langchain_image_embeddings.embeddings import ImageEmbeddings

__all__ = [
    "Dataset",
    "EpochMetrics",
    "FitConfig",
    "FitResult",
    "LossName",
    "Mode",
    "check_classes",
    "fit",
    "pk_batches",
    "random_batches",
    "recall_at_k",
    "recall_not_measurable",
]


def _seed(seed: int) -> random.Random:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a core dependency
        pass
    return random.Random(seed)


def _as_encoder(model: Any) -> ImageEncoder:
    """An encoder from a spec, an encoder, or the ``ImageEmbeddings`` a LangChain user holds
    (which failed with "'ImageEmbeddings' object has no attribute 'load'")."""
    if isinstance(model, str):
        from langchain_image_embeddings.encoders import create_encoder

        return create_encoder(model)
    if isinstance(model, ImageEncoder):
        return model
    from langchain_image_embeddings.embeddings import ImageEmbeddings

    if isinstance(model, ImageEmbeddings):
        # "auto" goes back to torch for good when training changes the weights.
        if model.runtime not in ("torch", "auto"):
            raise ValueError(
                f"cannot train an ImageEmbeddings running on {model.runtime!r}: training "
                "needs runtime='torch'"
            )
        return model.encoder
    raise TypeError(
        f"fit() takes an encoder spec, an ImageEncoder or an ImageEmbeddings, "
        f"got {type(model).__name__}"
    )


def fit(
    encoder: ImageEncoder | ImageEmbeddings | str,
    train: Dataset,
    val: Dataset | None = None,
    config: FitConfig | None = None,
    **options: Any,
) -> FitResult:
    """Fine-tune ``encoder`` on ``train``, validating on ``val`` after every epoch.

    Args:
        encoder: An encoder, a spec (``"timm:efficientnet_lite0"``) or an
            ``ImageEmbeddings`` (its encoder is used). Partial and full modes train its
            weights in place; head mode leaves it untouched.
        train: :class:`LabeledImages` (triplet, or InfoNCE on two views of each image) or
            :class:`CaptionedImages` (InfoNCE between images and captions; CLIP-type bases).
        val: Held-out data of the same kind (recall@k: image-to-image by label, or
            text-to-image by caption).
        config: A :class:`FitConfig`; keyword ``options`` override its fields.

    Returns:
        A :class:`FitResult` (the encoder holds the best epoch's weights).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.training import LabeledImages, fit

            train, val = LabeledImages.from_folder("catalogue/").split(0.2)
            result = fit("timm:efficientnet_lite0", train, val, loss="triplet", epochs=5)
            result.save_pretrained("catalogue-model")
    """
    if config is None:
        cfg = FitConfig(**options)
    else:
        cfg = dataclasses.replace(config, **options) if options else config
    encoder = _as_encoder(encoder)
    if not isinstance(train, (LabeledImages, CaptionedImages)):
        raise TypeError(
            f"train must be LabeledImages or CaptionedImages, got {type(train).__name__}"
        )
    if isinstance(train, CaptionedImages) and cfg.loss != "infonce":
        raise ValueError("captioned data trains with loss='infonce'")
    if val is not None and type(val) is not type(train):
        raise ValueError("val must be the same kind of data as train")
    if isinstance(train, LabeledImages):
        check_classes(train, cfg.loss)
    encoder.load()
    while (
        isinstance(encoder, FineTunedEncoder) and encoder.head is None and encoder.text_head is None
    ):
        encoder = encoder.base  # e.g. a saved "local:DIR" model without heads
    if cfg.mode == "head" and isinstance(encoder, FineTunedEncoder):
        # A head over a head could be trained but not saved: say so before training.
        raise ValueError(
            f"{encoder.spec} already has a projection head: fine-tune its original base model "
            "with mode='head', or train this one with mode='partial' or 'full'"
        )
    if cfg.embedding_dim is not None and isinstance(encoder, FineTunedEncoder):
        # Same in partial/full mode: a new head on top trained, then failed to save.
        raise ValueError(
            f"{encoder.spec} already has a projection head: train it with "
            "embedding_dim=None (its own head is trained in partial and full mode)"
        )
    if isinstance(train, CaptionedImages) and not encoder.has_text:
        raise ValueError(f"{encoder.spec} has no text tower: caption training needs a CLIP model")
    rng = _seed(cfg.seed)
    trainer = HeadTrainer(encoder, cfg) if cfg.mode == "head" else TowerTrainer(encoder, cfg)
    return trainer.run(train, val, rng)
