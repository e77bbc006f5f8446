"""Device, precision and autocast decisions: one place for inference and training.

Inference (:mod:`~langchain_image_embeddings.pipeline`, ``ImageEmbeddings.embed_query``)
and fine-tuning (:mod:`~langchain_image_embeddings.training.loop`) take their device and
mixed-precision choices from here, so the two cannot drift apart silently:

* ``"auto"`` inference precision is fp16 autocast on CUDA and fp32 everywhere else (half
  precision on this project's AVX2 CPU ran at 0.29x fp32);
* training autocast is bf16 where the GPU supports it, else fp16 with a gradient scaler:
  gradients need bf16's exponent range, while inference outputs are normalised vectors
  for which fp16 is within tolerance (cosine >= 0.999 to fp32) and faster on most GPUs.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import torch

__all__ = [
    "PRECISIONS",
    "Precision",
    "autocast_context",
    "check_device",
    "resolve_device",
    "resolve_precision",
    "training_autocast_dtype",
    "use_pinned_memory",
]

Precision = Literal["auto", "fp32", "fp16", "bf16"]
"""``"auto"``: fp16 autocast on CUDA, fp32 elsewhere. The others force a choice."""

PRECISIONS: tuple[str, ...] = get_args(Precision)


#: Device types torch accepts (``torch.device``), checked without importing torch.
_DEVICE = re.compile(
    r"^(auto|cpu|cuda|mps|xpu|hip|hpu|ipu|mtia|maia|meta|xla|lazy|vulkan|privateuseone)"
    r"(:\d+)?$"
)


def check_device(device: str) -> str:
    """Check a device string's form (cheap, no torch import); returns it unchanged.

    Raises:
        ValueError: Not ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or another
            torch device type.

    Example:
        >>> check_device("cuda:1")
        'cuda:1'
    """
    if not isinstance(device, str) or not _DEVICE.match(device) or device.startswith("auto:"):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' (or another torch device "
            f"type), not {device!r}"
        )
    return device


def resolve_device(device: str) -> str:
    """Turn ``"auto"`` into ``"cuda"``, ``"mps"`` or ``"cpu"``; check explicit choices.

    Raises:
        ValueError: CUDA asked for but absent, or a malformed device string.

    Example:
        .. code-block:: python

            resolve_device("auto")   # "cpu" on a machine without a GPU
    """
    import torch

    check_device(device)
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    torch.device(device)  # raises on a malformed device string
    return device


def resolve_precision(precision: str, device: str) -> torch.dtype | None:
    """The inference autocast dtype for ``precision`` on ``device``; ``None`` means fp32.

    Raises:
        ValueError: Unknown ``precision``.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp32":
        return None
    if precision == "auto":
        return torch.float16 if device.startswith("cuda") else None
    return torch.float16 if precision == "fp16" else torch.bfloat16


def training_autocast_dtype(device: str, enabled: bool = True) -> torch.dtype | None:
    """The training autocast dtype: bf16 (or fp16) on CUDA when ``enabled``, else ``None``."""
    import torch

    if not enabled or not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(
    device: str, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``dtype`` on ``device``'s type, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def use_pinned_memory(device: str) -> bool:
    """Whether to stage batches in pinned host memory (CUDA only, when available)."""
    import torch

    return device.startswith("cuda") and torch.cuda.is_available()
