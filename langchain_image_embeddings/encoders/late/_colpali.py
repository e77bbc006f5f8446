"""ColPali-family late-interaction encoders through the ``transformers`` classes.

ColPali (``ColPaliForRetrieval``) and ColQwen2 (``ColQwen2ForRetrieval``) embed a page image
as one unit vector per token of its sequence (the image patches and the short prompt around
them) and a text query as one unit vector per token. They are loaded from a **local folder**
that holds the model and its processor (``save_pretrained`` of both, or a downloaded
checkpoint): nothing is fetched from a hub.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_image_embeddings.errors import EncoderError, MissingDependencyError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["LATE_INSTALL", "LateInteractionEncoder", "late_model_classes"]

LATE_INSTALL = "pip install 'langchain-image-embeddings[late]'"

#: ``config.json`` model types this module loads -> (model class, processor class) names.
_CLASSES = {
    "colpali": ("ColPaliForRetrieval", "ColPaliProcessor"),
    "colqwen2": ("ColQwen2ForRetrieval", "ColQwen2Processor"),
}


def late_model_classes(model_type: str) -> tuple[Any, Any]:
    """The ``transformers`` model and processor classes of a late-interaction model type.

    Raises:
        MissingDependencyError: ``transformers`` (extra ``[late]``) is not installed.
        EncoderError: A model type that is not a supported late-interaction model.
    """
    if model_type not in _CLASSES:
        raise EncoderError(
            f"model type {model_type!r} is not a late-interaction model this package loads "
            f"(supported: {', '.join(sorted(_CLASSES))})"
        )
    try:
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            f"transformers is required for late-interaction models: {LATE_INSTALL}"
        ) from exc
    model_name, processor_name = _CLASSES[model_type]
    try:
        return getattr(transformers, model_name), getattr(transformers, processor_name)
    except AttributeError as exc:
        raise MissingDependencyError(
            f"this transformers ({transformers.__version__}) has no {model_name}: "
            f"upgrade it ({LATE_INSTALL})"
        ) from exc


class LateInteractionEncoder:
    """A multi-vector encoder: page images to patch vectors, queries to token vectors.

    Implements :class:`~langchain_image_embeddings.vectorstores.multivector.MultiVectorEmbedder`,
    the model of :class:`~langchain_image_embeddings.vectorstores.MultiVectorImageStore` and
    of :class:`~langchain_image_embeddings.rerankers.MaxSimReranker`.

    Setup:
        .. code-block:: bash

            pip install "langchain-image-embeddings[late]"

    Key init args:
        model: The loaded ``ColPaliForRetrieval`` / ``ColQwen2ForRetrieval``.
        processor: Its processor.
        model_id: Names the model in store records and content ids.
        batch_size: Pages per forward pass.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders.late import LateInteractionEncoder

            encoder = LateInteractionEncoder.from_pretrained("models/colpali-v1.3-hf")
            pages = encoder.embed_pages([page_image])   # [array (tokens, 128)], unit rows
            query = encoder.embed_query("2023 revenue") # array (tokens, 128)
    """

    def __init__(self, model: Any, processor: Any, model_id: str, *, batch_size: int = 4) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model.eval()
        self.processor = processor
        self._model_id = model_id
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike[str],
        *,
        device: str = "cpu",
        dtype: str | None = None,
        batch_size: int = 4,
    ) -> LateInteractionEncoder:
        """Load a ColPali / ColQwen2 model and its processor from a local folder.

        Args:
            folder: A folder with ``config.json``, the weights and the processor files.
            device: Where the model runs (``"cpu"``, ``"cuda"``).
            dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
            batch_size: Pages per forward pass.

        Raises:
            EncoderError: The folder has no config.json, or it is not ColPali/ColQwen2.
            MissingDependencyError: ``transformers`` is not installed (extra ``[late]``).
        """
        import json

        path = Path(folder)
        config_file = path / "config.json"
        if not config_file.is_file():
            raise EncoderError(
                f"{path} holds no config.json: give the folder of a saved ColPali/ColQwen2 "
                "model (model.save_pretrained and processor.save_pretrained)"
            )
        config_bytes = config_file.read_bytes()
        model_type = str(json.loads(config_bytes).get("model_type", ""))
        model_class, processor_class = late_model_classes(model_type)
        import torch

        kwargs: dict[str, Any] = {"local_files_only": True}
        if dtype is not None:
            kwargs["dtype"] = getattr(torch, dtype)
        model = model_class.from_pretrained(path, **kwargs).to(device)
        processor = processor_class.from_pretrained(path, local_files_only=True)
        digest = hashlib.sha256(config_bytes).hexdigest()[:12]
        return cls(model, processor, f"{model_type}:{path.name}@{digest}", batch_size=batch_size)

    @property
    def model_id(self) -> str:
        """``"<model type>:<folder name>@<config hash>"``."""
        return self._model_id

    @property
    def dim(self) -> int:
        """Dimension of the patch and token vectors (the config's ``embedding_dim``)."""
        return int(self.model.config.embedding_dim)

    def _forward(self, batch: Any) -> list[np.ndarray]:
        import torch

        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in batch.items()}
        with torch.inference_mode():
            embeddings = self.model(**inputs).embeddings.float()
        mask = inputs["attention_mask"].bool()
        # Padding rows are zero vectors (the model masks them): keep the real tokens only.
        return [
            e[m].cpu().numpy().astype(np.float32) for e, m in zip(embeddings, mask, strict=True)
        ]

    def embed_pages(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """One ``(tokens, dim)`` matrix of unit rows per page image (RGB PIL images)."""
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            out.extend(self._forward(self.processor.process_images(images=chunk)))
        return out

    def embed_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One ``(tokens, dim)`` matrix of unit rows per text query."""
        out: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            out.extend(self._forward(self.processor.process_queries(text=chunk)))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """A ``(tokens, dim)`` matrix of unit rows for one text query."""
        return self.embed_queries([text])[0]
