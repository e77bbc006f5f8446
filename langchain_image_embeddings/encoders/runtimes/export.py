"""Turning an encoder's towers into ONNX files, and the cache keys that name them.

The image tower is ``encoder.forward_images`` (whatever the backend: open_clip, timm,
torchvision, a fine-tuned head on top) traced by ``torch.onnx.export`` (the ``torch.export``
based exporter: the TorchScript one cannot export the fused attention open_clip runs in
eval mode) with a dynamic batch axis. The text tower of open_clip's CLIP models is exported
from tokens with dynamic batch *and* sequence axes, so the runtime keeps the padding trim
of the torch path (see ``open_clip._encode_text_trimmed``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from langchain_image_embeddings.encoders.base import ImageEncoder

logger = logging.getLogger(__name__)

#: Bumped when the export code changes what it writes (invalidates older cache entries).
EXPORT_FORMAT = 1
#: File name of an exported ONNX model inside its cache entry.
ONNX_FILE = "model.onnx"
#: Example batch for tracing; the batch axis is dynamic, so any size runs afterwards.
_TRACE_BATCH = 2

#: Process-wide count of ONNX exports (tests and benchmarks read it).
EXPORTS = {"count": 0}


def version_of(distribution: str) -> str:
    """Installed version of ``distribution`` (``"absent"`` when not installed)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def exporter_versions() -> dict[str, str]:
    """Versions of everything that shapes an exported ONNX file."""
    from langchain_image_embeddings._version import __version__

    return {
        "langchain-image-embeddings": __version__,
        "export_format": str(EXPORT_FORMAT),
        "torch": version_of("torch"),
        "onnx": version_of("onnx"),
        "onnxscript": version_of("onnxscript"),
    }


def state_hash(module: nn.Module) -> str:
    """BLAKE2b of every parameter and buffer (name, dtype, shape, bytes), in name order.

    Part of every cache key: the fingerprint names the weights (``"laion2b_s34b_b79k"``,
    ``"None"`` for random ones, a path whose file may change), the hash *is* the weights, so
    two random inits or a fine-tune never share an entry. About 0.4 s for ViT-B/32 (350 MB).
    """
    digest = hashlib.blake2b(digest_size=20)
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.view(torch.int16)
        if value.numel():
            digest.update(memoryview(value.numpy()).cast("B"))
    return digest.hexdigest()


@dataclass(frozen=True)
class TowerExport:
    """What to export: a module over example inputs, and how it is named and called.

    Attributes:
        tower: ``"image"`` or ``"text"``.
        module: The ``nn.Module`` to trace (holds every weight it uses).
        example: Example input tensor.
        dynamic: Names of the input's dynamic axes, by position (batch, then sequence).
        input_name: The ONNX input name.

    Example:
        .. code-block:: python

            from pathlib import Path

            from langchain_image_embeddings import create_encoder
            from langchain_image_embeddings.encoders.runtimes.export import (
                export_onnx,
                image_export,
            )

            export_onnx(image_export(create_encoder("timm:efficientnet_lite0")), Path("."))
    """

    tower: str
    module: nn.Module
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


class _Forward(nn.Module):
    """An ``nn.Module`` calling ``fn`` (an encoder's forward) with ``owner``'s weights
    registered, so the exporter lifts them as parameters rather than as constants."""

    def __init__(self, owner: nn.Module, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.owner = owner
        self._fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x)  # type: ignore[no-any-return]


def image_export(encoder: ImageEncoder) -> TowerExport:
    """The image tower of ``encoder``: pixels ``(N, 3, H, W)`` float32 -> features."""
    height, width = encoder.preprocess_config.input_size
    example = torch.randn(_TRACE_BATCH, 3, height, width)
    module = _Forward(encoder.module, encoder.forward_images)
    return TowerExport("image", module, example, ("batch",), "pixels")


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
            from langchain_image_embeddings.encoders.runtimes.export import text_tower

            tower = text_tower(create_encoder("open_clip:ViT-B-32"))
            tokens = tower.tokenize(["a cat"])   # (1, 77) int64
    """

    export: TowerExport
    tokenize: Callable[[Sequence[str]], torch.Tensor]
    trim: bool


def text_tower(encoder: ImageEncoder) -> TextTower | None:
    """The text tower of an open_clip CLIP model (optionally under a fine-tuned text head),
    or ``None`` when the encoder has none the runtimes know how to export."""
    from langchain_image_embeddings.encoders.local import FineTunedEncoder

    if not encoder.has_text:
        return None
    head: nn.Module | None = None
    base = encoder
    if isinstance(encoder, FineTunedEncoder):
        base, head = encoder.base, encoder.text_head
    from langchain_image_embeddings.encoders.open_clip import (
        OpenCLIPEncoder,
        _can_trim_padding,
        _encode_text_trimmed,
    )

    if not isinstance(base, OpenCLIPEncoder):
        return None
    base.load()
    model = base.module
    trim = _can_trim_padding(model, base._tokenizer)

    def forward(tokens: torch.Tensor) -> torch.Tensor:
        encode = _encode_text_trimmed if trim else _encode_text_full
        features = encode(model, tokens)
        return features if head is None else head(features)

    example = base.tokenize(["a photo of a cat", "a diagram"])
    dynamic = ("batch", "sequence") if trim else ("batch",)
    owner = encoder.module
    export = TowerExport("text", _Forward(owner, forward), example, dynamic, "tokens")
    return TextTower(export, base.tokenize, trim)


def _encode_text_full(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    return model.encode_text(tokens)  # type: ignore[no-any-return]


def export_onnx(spec: TowerExport, folder: Path) -> Path:
    """Export ``spec`` to ``folder/model.onnx`` (weights may go to ``model.onnx.data``)."""
    target = folder / ONNX_FILE
    example = spec.example
    dims: dict[int, Any] = {}
    for axis, name in enumerate(spec.dynamic):
        upper = int(example.shape[axis]) if name == "sequence" else None
        dims[axis] = (
            torch.export.Dim(name, min=1, max=upper)
            if upper is not None
            else torch.export.Dim(name, min=1)
        )
    module = spec.module.eval()
    logger.info("exporting the %s tower to ONNX (%s)", spec.tower, target)
    # Outside inference_mode: torch.export cannot trace inference tensors.
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[spec.input_name],
            output_names=["features"],
            dynamic_shapes={"x": dims},
            dynamo=True,
            optimize=True,
            verbose=False,
        )
        assert program is not None
        program.save(str(target), external_data=_needs_external_data(module))
    EXPORTS["count"] += 1
    return target


def _needs_external_data(module: nn.Module) -> bool:
    # Protobuf caps one file at 2 GB; smaller models stay one self-contained file.
    size = sum(int(t.numel()) * int(t.element_size()) for t in module.state_dict().values())
    return size > 1_500_000_000
