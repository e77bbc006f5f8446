"""What the timm and torchvision encoders share: a classifier backbone, pooled, optionally
projected, with its own preprocessing.

Both validate their options the same way (no silent random weights, pooling from
:data:`~langchain_image_embeddings.encoders.pooling.POOLINGS`), assemble the same
``backbone`` / ``pool`` / ``head`` module container (head weights loaded strictly), and
expose ``dim`` and ``preprocess_config`` once loaded. Only building the backbone and the
forward pass differ.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from langchain_image_embeddings.encoders.base import (
    DEFAULT_WEIGHTS,
    ImageEncoder,
    PreprocessConfig,
    pretrained_option,
)
from langchain_image_embeddings.encoders.pooling import POOLINGS, ProjectionHead
from langchain_image_embeddings.encoders.weights import load_head_weights
from langchain_image_embeddings.errors import EncoderError

__all__ = ["BackboneEncoder"]


class BackboneEncoder(ImageEncoder):
    """Base of :class:`TimmEncoder` and :class:`TorchvisionEncoder` (not used directly).

    Args:
        name: The backend's model name.
        pretrained: ``"default"``, a backend weights tag, a local checkpoint path, or
            ``None`` for random weights (needs ``allow_random_weights``).
        pooling: One of :attr:`poolings`, or ``None`` for the backend's default.
        embedding_dim: Add a projection head (Linear -> ReLU -> Linear) to this size.
        head_weights: A file with the projection head (and pooling) weights, loaded strictly.
        allow_random_weights: Permit ``pretrained=None``.
        device: Where the model runs.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders.timm import TimmEncoder

            TimmEncoder("efficientnet_lite0", pooling="gem").dim   # 1280
    """

    #: The poolings this backend offers (a subset of ``POOLINGS``).
    poolings: tuple[str, ...] = POOLINGS
    #: The pooling used when none is given (``None``: the backend's own head pooling).
    default_pooling: str | None = None

    def __init__(
        self,
        name: str,
        *,
        pretrained: str | os.PathLike[str] | bool | None = DEFAULT_WEIGHTS,
        pooling: str | None = None,
        embedding_dim: int | None = None,
        head_weights: str | None = None,
        allow_random_weights: bool = False,
        device: str = "cpu",
    ) -> None:
        given, pretrained = pretrained, pretrained_option(pretrained, f"{self.backend}:{name}")
        if pretrained is None and not allow_random_weights:
            raise EncoderError(
                f"{self.backend}:{name} with pretrained={given!r} would use random weights; pass "
                "allow_random_weights=True if that is what you want"
            )
        if pooling is not None and pooling not in self.poolings:
            raise EncoderError(
                f"unknown pooling {pooling!r} for {self.backend}:{name}; choose one of "
                f"{', '.join(self.poolings)}"
            )
        if embedding_dim is not None and (
            not isinstance(embedding_dim, int)
            or isinstance(embedding_dim, bool)
            or embedding_dim < 1
        ):
            raise EncoderError(
                f"embedding_dim for {self.backend}:{name} must be a positive int (or None for "
                f"no projection head), not {embedding_dim!r}"
            )
        super().__init__(name, pretrained=pretrained, device=device)
        self.pooling = pooling or self.default_pooling
        self.embedding_dim = embedding_dim
        self.head_weights = head_weights
        self._container: nn.ModuleDict | None = None
        self._features = 0
        self._preprocess: PreprocessConfig | None = None

    def _options(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "embedding_dim": self.embedding_dim}

    def _assemble(self, modules: dict[str, nn.Module], features: int) -> nn.ModuleDict:
        """Add the projection head to ``modules``, load head weights, keep the container."""
        self._features = features
        if self.embedding_dim is not None:
            modules["head"] = ProjectionHead(features, self.embedding_dim)
        container = nn.ModuleDict(modules)
        if self.head_weights is not None:
            load_head_weights(container, self.head_weights, model=f"{self.spec} head")
        self._container = container
        return container

    def _module(self) -> nn.Module:
        assert self._container is not None
        return self._container

    @property
    def dim(self) -> int:
        self.load()
        return self.embedding_dim or self._features

    @property
    def preprocess_config(self) -> PreprocessConfig:
        self.load()
        assert self._preprocess is not None
        return self._preprocess
