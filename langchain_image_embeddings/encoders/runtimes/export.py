"""Turning an encoder's towers into ONNX files, and the cache keys that name them.

Each encoder describes its own towers (``encoder.export_image_tower()``,
``encoder.export_text_tower()``: :mod:`~langchain_image_embeddings.encoders.towers`); this
module traces them with ``torch.onnx.export`` (the ``torch.export`` based exporter: the
TorchScript one cannot export the fused attention open_clip runs in eval mode) and names
what shaped the file (versions, weights).

Example:
    .. code-block:: python

        from pathlib import Path

        from langchain_image_embeddings import create_encoder
        from langchain_image_embeddings.encoders.runtimes.export import export_onnx

        export_onnx(create_encoder("timm:efficientnet_lite0").export_image_tower(), Path("."))
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from langchain_image_embeddings.encoders.towers import TowerExport

__all__ = [
    "EXPORTS",
    "EXPORT_FORMAT",
    "ONNX_FILE",
    "export_onnx",
    "exporter_versions",
    "state_hash",
    "version_of",
]

logger = logging.getLogger(__name__)

#: Bumped when the export code changes what it writes (invalidates older cache entries).
EXPORT_FORMAT = 1
#: File name of an exported ONNX model inside its cache entry.
ONNX_FILE = "model.onnx"
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
