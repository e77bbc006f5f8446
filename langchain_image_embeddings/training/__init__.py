"""Fine-tuning for retrieval: triplet and InfoNCE losses, data, the training loop.

An optional extra (``pip install 'langchain-image-embeddings[training]'``), never imported
by the core package. Trained models are saved with
:func:`~langchain_image_embeddings.encoders.local.save_pretrained` and loaded anywhere with
the encoder spec ``"local:DIR"`` or ``ImageEmbeddings.from_pretrained(DIR)``.

Example:
    .. code-block:: python

        from langchain_image_embeddings import ImageEmbeddings
        from langchain_image_embeddings.training import LabeledImages, fit

        train, val = LabeledImages.from_folder("catalogue/").split(val_fraction=0.2)
        result = fit("timm:efficientnet_lite0", train, val, loss="triplet", mode="head")
        result.save_pretrained("catalogue-model")
        embeddings = ImageEmbeddings.from_pretrained("catalogue-model")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_image_embeddings._exports import lazy_exports

# Lazy: ``imgemb`` mounts the finetune parser (which reads only ``training.config``) on every
# command, and importing torch for ``imgemb info`` or ``--help`` cost about a second.
if TYPE_CHECKING:
    from langchain_image_embeddings.encoders.local import (
        FineTunedEncoder,
        LocalEncoder,
        save_pretrained,
    )
    from langchain_image_embeddings.training.config import EpochMetrics, FitConfig, FitResult
    from langchain_image_embeddings.training.data import (
        CaptionedImages,
        LabeledImages,
        train_transform,
    )
    from langchain_image_embeddings.training.loop import fit
    from langchain_image_embeddings.training.losses import InfoNCELoss, TripletLoss
    from langchain_image_embeddings.training.metrics import recall_at_k

__all__ = [
    "CaptionedImages",
    "EpochMetrics",
    "FineTunedEncoder",
    "FitConfig",
    "FitResult",
    "InfoNCELoss",
    "LabeledImages",
    "LocalEncoder",
    "TripletLoss",
    "fit",
    "recall_at_k",
    "save_pretrained",
    "train_transform",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CaptionedImages": ".data",
        "EpochMetrics": ".config",
        "FineTunedEncoder": "..encoders.local",
        "FitConfig": ".config",
        "FitResult": ".config",
        "InfoNCELoss": ".losses",
        "LabeledImages": ".data",
        "LocalEncoder": "..encoders.local",
        "TripletLoss": ".losses",
        "fit": ".loop",
        "recall_at_k": ".metrics",
        "save_pretrained": "..encoders.local",
        "train_transform": ".data",
    },
)
