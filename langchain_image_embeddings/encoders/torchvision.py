"""torchvision backend: classification CNNs as global-pooled feature extractors.

The seed's design: backbone -> global pooling -> optional projection head -> (L2 norm, done
by the caller). Specs: ``"torchvision:resnet50"``, ``"torchvision:convnext_tiny"``,
``"torchvision:efficientnet_b0"``, ``"torchvision:densenet121"``, ... Models whose feature
map we can reach (ResNet/ResNeXt/Wide-ResNet/RegNet, DenseNet, MobileNet, EfficientNet,
ConvNeXt, VGG, AlexNet) accept every pooling; any other classifier (ViT, Swin, ...) works with
its own pooling, the classification head removed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.encoders.backbone import BackboneEncoder
from langchain_image_embeddings.encoders.base import DEFAULT_WEIGHTS, PreprocessConfig
from langchain_image_embeddings.encoders.pooling import create_pooling
from langchain_image_embeddings.encoders.weights import (
    load_state_dict,
    looks_like_path,
    offline_hint,
)
from langchain_image_embeddings.errors import EncoderError, WeightsNotFoundError

__all__ = ["TorchvisionEncoder"]


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class _Trunk(nn.Module):
    """Feature map extractor: the layers of a classifier up to its global pooling."""

    def __init__(self, layers: nn.Module, post: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = layers
        self.post = post if post is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.layers(x))  # type: ignore[no-any-return]


class _AfterPool(nn.Module):
    """Layers a model applies after pooling, before its classifier (ConvNeXt's LayerNorm)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x[:, :, None, None]).flatten(1)  # type: ignore[no-any-return]


def _split(model: nn.Module, name: str) -> tuple[nn.Module | None, nn.Module | None, int]:
    """Return (trunk producing a feature map, post-pool module, feature width) or (None, ..)."""
    children = dict(model.named_children())
    if "fc" in children and "avgpool" in children and isinstance(children["fc"], nn.Linear):
        layers = [m for k, m in children.items() if k not in ("avgpool", "fc", "dropout")]
        if not any(k.startswith("aux") for k in children):
            return _Trunk(nn.Sequential(*layers)), None, children["fc"].in_features
    if "features" in children:
        features = children["features"]
        classifier = children.get("classifier")
        linears = (
            [m for m in classifier.modules() if isinstance(m, nn.Linear)] if classifier else []
        )
        if name.startswith("densenet") and linears:
            return _Trunk(features, nn.ReLU()), None, linears[0].in_features
        if name.startswith("convnext") and classifier is not None:
            norm = classifier[0]  # type: ignore[index]
            return _Trunk(features), _AfterPool(norm), linears[-1].in_features
        if name.startswith(("vgg", "alexnet")):
            width = _probe_width(features)
            return _Trunk(features), None, width
        if linears and name.startswith(("mobilenet", "efficientnet")):
            return _Trunk(features), None, linears[0].in_features
    return None, None, 0


def _probe_width(features: nn.Module) -> int:
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels)


def _strip_head(model: nn.Module) -> int:
    """Replace the classification head with ``Identity``; return the feature width."""
    for attr in ("fc", "head", "heads", "classifier"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
        if isinstance(head, nn.Linear) or (attr == "heads" and linears):
            setattr(model, attr, nn.Identity())
            return int(linears[0].in_features)
        if isinstance(head, nn.Sequential) and linears and isinstance(head[-1], nn.Linear):
            head[-1] = nn.Identity()
            return int(linears[-1].in_features)
    raise EncoderError(f"cannot find the classification head of {type(model).__name__}")


class TorchvisionEncoder(BackboneEncoder):
    """A torchvision classifier turned into a global-pooled embedding model.

    Args:
        name: A ``torchvision.models`` classification model name.
        pretrained: ``"default"`` (the ``DEFAULT`` weights enum), a weights name
            (``"IMAGENET1K_V2"``), a local checkpoint path, or ``None`` for random weights
            (needs ``allow_random_weights``).
        pooling: ``"avg"`` (default, what the classifier uses), ``"max"``, ``"gem"`` or
            ``"attention"``.
        embedding_dim: Add the projection head (Linear -> ReLU -> Linear) to this size.
        head_weights: A file with the projection head (and pooling) weights.
        allow_random_weights: Permit ``pretrained=None``.
        device: Where the model runs.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders.torchvision import TorchvisionEncoder

            encoder = TorchvisionEncoder("resnet50", pooling="gem")
            print(encoder.dim)  # 2048
    """

    backend = "torchvision"
    poolings = ("avg", "max", "gem", "attention")
    default_pooling = "avg"  # what the classifiers use
    _pooled = False  # True when the model keeps its own pooling (no reachable feature map)

    def _create(self) -> tuple[nn.Module, Any]:
        tv = require("torchvision", "torchvision")
        try:
            weights_enum = tv.models.get_model_weights(self.name)
        except (ValueError, KeyError) as exc:
            raise EncoderError(f"torchvision has no model {self.name!r}") from exc
        if self.name not in tv.models.list_models(module=tv.models):
            # Detection/segmentation/video builders download a backbone even with
            # weights=None (a raw URLError offline) and have no image-level output.
            raise EncoderError(
                f"torchvision:{self.name} is not a classification model; use one of "
                "torchvision.models.list_models(module=torchvision.models)"
            )
        tag = self.pretrained
        if tag is None or looks_like_path(tag):
            model = tv.models.get_model(self.name, weights=None)
            if tag is not None:
                state = load_state_dict(tag, model=self.spec)
                model.load_state_dict(state, strict=True)
            return model, weights_enum.DEFAULT
        weights = weights_enum.DEFAULT if tag == DEFAULT_WEIGHTS else None
        if weights is None:
            try:
                weights = weights_enum[tag]
            except KeyError as exc:
                known = ", ".join(w.name for w in weights_enum)
                raise EncoderError(
                    f"torchvision:{self.name} has no weights {tag!r}; known: {known}"
                ) from exc
        try:
            model = tv.models.get_model(self.name, weights=weights)
        except Exception as exc:
            import torch.hub

            raise offline_hint(
                self.spec, str(weights), f"{torch.hub.get_dir()}/checkpoints", exc
            ) from exc
        return model, weights

    def _build(self) -> None:
        try:
            model, weights = self._create()
        except (EncoderError, WeightsNotFoundError):
            raise
        except RuntimeError as exc:
            raise WeightsNotFoundError(f"cannot load weights into {self.spec}: {exc}") from exc
        trunk, post, width = _split(model, self.name)
        modules: dict[str, nn.Module] = {}
        if trunk is not None:
            modules["backbone"] = trunk
            modules["pool"] = create_pooling(self.pooling or self.poolings[0], width)
            if post is not None:
                modules["post"] = post
        else:
            if self.pooling != "avg":
                raise EncoderError(
                    f"torchvision:{self.name} supports only its own pooling; pooling="
                    f"{self.pooling!r} needs a CNN whose feature map we can reach (e.g. resnet50)"
                )
            width = _strip_head(model)
            modules["backbone"] = model
            self._pooled = True
        self._assemble(modules, width)
        transform = weights.transforms()
        self._transform = transform
        crop = int(transform.crop_size[0])
        resize = int(transform.resize_size[0])
        self._preprocess = PreprocessConfig(
            input_size=(crop, crop),
            mean=tuple(transform.mean) or _IMAGENET_MEAN,
            std=tuple(transform.std) or _IMAGENET_STD,
            interpolation=str(transform.interpolation.value),
            resize_mode="shortest",
            crop_pct=crop / resize,
        )

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        parts = self.module
        assert isinstance(parts, nn.ModuleDict)
        x = parts["backbone"](pixels)
        if not self._pooled:
            x = parts["pool"](x)
            if "post" in parts:
                x = parts["post"](x)
        x = x.flatten(1)
        if "head" in parts:
            x = parts["head"](x)
        return x  # type: ignore[no-any-return]
