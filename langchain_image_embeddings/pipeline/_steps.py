"""The pipeline's pure steps and decisions, testable without a GPU or a thread: how large a
decode must be (:func:`decode_target_size`, :func:`shrink`), which part of an encoder's
transform the decode threads run (:func:`split_transform`), memory format, the old fixed
worker rule, and the final fp32 / L2 step (:func:`finish`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from langchain_image_embeddings.encoders.base import PreprocessConfig


#: Fast decoding keeps at least this multiple of the size the encoder's resize needs, so the
#: encoder's own (antialiased bicubic) resize still does the last reduction. With 1 (the
#: smallest DCT scale covering the input) the embedding cosine to the full decode dropped to
#: 0.996 on real photos; with 2 it stays >= 0.9989, at ~25 ms instead of ~170 ms for a
#: 4000x3000 JPEG (measured, EfficientNet-Lite0).
REDUCING_GAP = 2


def default_num_workers(device: str = "cpu") -> int:
    """The old fixed rule: every core (2-16) for an accelerator, half the cores (1-8) for a
    CPU model.

    Right for ViT-B/32 on a CPU, wrong for light models (Lite0 on 12 MP JPEGs: 14.8 img/s
    with it against 27.7 img/s with 4 threads on 2 cores), so ``ImagePipeline`` no longer
    uses it when ``num_workers=None``: it measures instead (see
    :mod:`~langchain_image_embeddings.pipeline._decode_pool`). Kept for comparison in the benchmarks.

    With the model on CPU, decode threads share the cores with torch's own threads; with
    fast decoding a photo costs ~20-25% of a ViT-B/32 forward pass, and more threads than
    that only oversubscribe the cores (measured on 2 cores: 1 worker 0.97x the model-only
    speed end to end, 2 workers 0.90x).
    """
    cpus = os.cpu_count() or 1
    if device.startswith(("cuda", "mps")):
        return max(2, min(16, cpus))
    return max(1, min(8, cpus // 2))


def wants_channels_last(module: torch.nn.Module) -> bool:
    """Whether a model is a CNN that profits from ``channels_last`` (not a ViT's patch conv)."""
    import torch

    convs = sum(1 for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    return convs >= 3


def decode_target_size(config: PreprocessConfig) -> tuple[int, int] | None:
    """``(width, height)`` a decoded image must cover for the encoder's transform.

    ``"shortest"`` resizes the short side to ``size / crop_pct`` before cropping, so any
    image whose short side reaches that is enough: the answer is square. ``"squash"`` needs
    both sides; ``"longest"`` is answered conservatively (both sides). Unknown modes
    return ``None`` (decode in full).
    """
    height, width = config.input_size
    crop = config.crop_pct if config.crop_pct and config.crop_pct > 0 else 1.0
    if config.resize_mode == "squash":
        return math.ceil(width / crop), math.ceil(height / crop)
    if config.resize_mode in ("shortest", "longest"):
        side = math.ceil(max(height, width) / crop)
        return side, side
    return None


@dataclass(frozen=True)
class SplitTransform:
    """An encoder transform cut before its ``ToTensor`` + ``Normalize`` tail.

    Workers run :attr:`pil_part` (resize, crop: Pillow, no torch) and hand back ``uint8``
    arrays; the tail then runs once per batch in the main thread. Besides saving per-image
    torch calls, this keeps torch's intra-op thread pools out of the decode threads (each
    worker thread running torch ops would otherwise start its own OpenMP team and
    oversubscribe the cores the model is using).
    """

    pil_part: Callable[[Image.Image], Image.Image]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def split_transform(transform: Any) -> SplitTransform | None:
    """Split a torchvision ``Compose`` ending in ``ToTensor``/``MaybeToTensor``, ``Normalize``.

    Returns ``None`` for any other transform (it then runs whole, per image, in the workers).
    """
    steps = getattr(transform, "transforms", None)
    if not isinstance(steps, list) or len(steps) < 2:
        return None
    to_tensor, normalize = steps[-2], steps[-1]
    if type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor"):
        return None
    if type(normalize).__name__ != "Normalize" or getattr(normalize, "inplace", False):
        return None
    mean = tuple(float(v) for v in _as_list(normalize.mean))
    std = tuple(float(v) for v in _as_list(normalize.std))
    if len(mean) != 3 or len(std) != 3:
        return None
    head = steps[:-2]

    def pil_part(image: Image.Image) -> Image.Image:
        for step in head:
            image = step(image)
        return image

    return SplitTransform(pil_part, mean, std)


def _as_list(values: Any) -> list[Any]:
    return list(values.tolist() if hasattr(values, "tolist") else values)


def shrink(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Box-reduce ``image`` by an integer factor that keeps at least twice ``target``.

    The encoder's (bicubic) resize then has at most a 2x reduction left, which makes the
    result practically indistinguishable from resizing the full image, for a fraction of
    the cost (Pillow's own ``reducing_gap=2`` rule).
    """
    factor = min(
        image.width // (REDUCING_GAP * target[0]), image.height // (REDUCING_GAP * target[1])
    )
    if factor < 2:
        return image
    return image.reduce(factor)


def finish(features: torch.Tensor, normalize: bool) -> np.ndarray:
    """fp32, optionally L2-normalised, as a numpy array on the host."""
    import torch

    features = features.float()
    if normalize:
        features = torch.nn.functional.normalize(features, dim=-1)
    return features.cpu().numpy()
