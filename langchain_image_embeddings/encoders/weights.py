"""Loading weight files safely: safetensors or ``torch.load(weights_only=True)``, never pickle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_image_embeddings.errors import WeightsNotFoundError

if TYPE_CHECKING:
    import torch

_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def looks_like_path(value: str) -> bool:
    """Whether a ``pretrained`` value names a local file rather than a tag or hub id."""
    return (
        value.endswith(_WEIGHT_SUFFIXES)
        or os.sep in value
        or value.startswith((".", "~"))
        or os.path.exists(value)
    )


def load_state_dict(path: str | os.PathLike[str], *, model: str) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file or a weights-only torch checkpoint.

    Checkpoints that wrap the weights (``{"state_dict": ...}``, ``{"model": ...}``) are
    unwrapped. Arbitrary pickles are refused by ``weights_only=True``, whatever
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says.

    Raises:
        WeightsNotFoundError: The file is missing or is not a weights file.
    """
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsNotFoundError(
            f"weights for {model}: no file at {file}. Pass pretrained='/path/to/weights"
            ".safetensors' (or .pt/.pth/.bin) pointing at a local checkpoint."
        )
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(file), device="cpu"))
        obj = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsNotFoundError(
            f"weights for {model}: cannot read {file} as safetensors or a weights-only torch "
            f"checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise WeightsNotFoundError(f"weights for {model}: {file} does not hold a state dict")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def offline_hint(model: str, tag: str, where: str, exc: BaseException) -> WeightsNotFoundError:
    """The error raised when a backend cannot fetch or find its pretrained weights."""
    return WeightsNotFoundError(
        f"cannot load pretrained weights {tag!r} for {model}: {type(exc).__name__}: {exc}. "
        f"Looked in {where} (and the network, if reachable). To run offline, put the file "
        "there, or pass pretrained='/path/to/checkpoint' (safetensors or a torch state dict)."
    )
