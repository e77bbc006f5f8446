"""An encoder's towers as modules ready to export: what each encoder hands the runtimes.

Each encoder describes its own towers (:meth:`ImageEncoder.export_image_tower
<langchain_image_embeddings.encoders.base.ImageEncoder.export_image_tower>`,
:meth:`~langchain_image_embeddings.encoders.base.ImageEncoder.export_text_tower`), so the
runtimes (:mod:`~langchain_image_embeddings.encoders.runtimes`) export any encoder through
the interface, without knowing a backend's internals.

Example:
    .. code-block:: python

        import torch

        from langchain_image_embeddings.encoders.towers import TowerExport, TowerModule

        layer = torch.nn.Linear(4, 2)
        tower = TowerExport("image", TowerModule(layer, layer), torch.randn(2, 4), ("batch",), "x")
        tower.describe()["shape"]   # [2, 4]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["TRACE_BATCH", "TextTower", "TowerExport", "TowerModule"]

#: Rows of the example batch a tower is traced with; the batch axis is dynamic, so any size
#: runs afterwards.
TRACE_BATCH = 2


class TowerModule(nn.Module):
    """An ``nn.Module`` calling ``fn`` (an encoder's forward) with ``owner``'s weights
    registered, so the exporter lifts them as parameters rather than as constants.

    Args:
        owner: The module holding every weight ``fn`` uses.
        fn: Input tensor -> features.

    Example:
        .. code-block:: python

            import torch

            from langchain_image_embeddings.encoders.towers import TowerModule

            layer = torch.nn.Linear(4, 2)
            module = TowerModule(layer, lambda x: layer(x) * 2)
    """

    def __init__(self, owner: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.owner = owner
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@dataclass(frozen=True)
class TowerExport:
    """What to export: a module over example inputs, and how it is named and called.

    Attributes:
        tower: ``"image"`` or ``"text"``.
        module: The module to trace (holds every weight it uses).
        example: Example input tensor.
        dynamic: Names of the input's dynamic axes, by position (batch, then sequence).
        input_name: The ONNX input name.

    Example:
        .. code-block:: python

            from pathlib import Path

            from langchain_image_embeddings import create_encoder
            from langchain_image_embeddings.encoders.runtimes.export import export_onnx

            encoder = create_encoder("timm:efficientnet_lite0")
            export_onnx(encoder.export_image_tower(), Path("."))
    """

    tower: str
    module: TowerModule
    example: torch.Tensor
    dynamic: tuple[str, ...]
    input_name: str

    def describe(self) -> dict[str, Any]:
        """The part of the cache key that depends on the input (shape, dtype, axes)."""
        return {
            "tower": self.tower,
            "input": self.input_name,
            "shape": list(self.example.shape),
            "dtype": str(self.example.dtype),
            "dynamic": list(self.dynamic),
        }


@dataclass(frozen=True)
class TextTower:
    """How a runtime embeds texts: tokenise in Python, run the exported tokens -> features.

    Attributes:
        export: The tokens -> features module to export.
        tokenize: Texts -> ``int64`` tokens ``(N, context_length)``.
        trim: Whether padding may be cut to the batch's longest text before the forward.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import create_encoder

            tower = create_encoder("open_clip:ViT-B-32").export_text_tower()
            tokens = tower.tokenize(["a cat"])   # (1, 77) int64
    """

    export: TowerExport
    tokenize: Callable[[Sequence[str]], torch.Tensor]
    trim: bool
