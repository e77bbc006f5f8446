"""Loading weight files safely: safetensors or ``torch.load(weights_only=True)``, never pickle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_image_embeddings.errors import EncoderError, WeightsNotFoundError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["load_head_weights", "load_state_dict", "looks_like_path", "offline_hint"]


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
    # Without a network the hub client retries for about a minute before this error.
    retries = (
        ""
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        else " Offline, set HF_HUB_OFFLINE=1 to fail at once instead of after the hub's retries."
    )
    return WeightsNotFoundError(
        f"cannot load pretrained weights {tag!r} for {model}: {type(exc).__name__}: {exc}. "
        f"Looked in {where} (and the network, if reachable). To run offline, put the file "
        "there, or pass pretrained='/path/to/checkpoint' (safetensors or a torch state dict)."
        + retries
    )


def load_head_weights(
    container: nn.Module,
    path: str | os.PathLike[str],
    *,
    model: str,
    trained: tuple[str, ...] = ("pool.", "head."),
) -> None:
    """Load a head-weights file into ``container``, refusing a file that does not fit it.

    The file must hold every weight of the trained parts (keys starting with one of
    ``trained``: the pooling and the projection head) and nothing ``container`` lacks; it
    may also hold backbone weights. Anything else is an error naming the keys, never a
    silent partial load.

    Raises:
        WeightsNotFoundError: The file is missing or not a weights file.
        EncoderError: Missing or unexpected keys, or tensors of the wrong shape.
    """
    state = load_state_dict(path, model=model)
    own = container.state_dict()
    missing = sorted(k for k in own if k.startswith(trained) and k not in state)
    unexpected = sorted(k for k in state if k not in own)
    if missing or unexpected:
        raise EncoderError(
            f"head weights for {model}: {path} does not fit this model (missing keys "
            f"{missing[:8]} ({len(missing)}), unexpected keys {unexpected[:8]} "
            f"({len(unexpected)})); expected the keys {sorted(k for k in own if k.startswith(trained))[:8]}"
        )
    wrong = sorted(k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape))
    if wrong:
        raise EncoderError(
            f"head weights for {model}: {path} has tensors of the wrong shape for "
            + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in wrong[:8])
        )
    container.load_state_dict(state, strict=False)
