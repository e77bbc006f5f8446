"""The ``local:DIR`` backend: fine-tuned encoders saved as safetensors + a JSON config.

A saved model is a directory with two files:

- ``model.safetensors``: every weight of the model (backbone, pooling, projection heads,
  buffers such as BatchNorm statistics), so the directory is self-contained: loading never
  needs the base model's original weights, and never goes through pickle.
- ``config.json``: the base encoder spec and options, the projection heads, pooling, the
  preprocessing, the output dimension and free-form training metadata.

Loading (``create_encoder("local:DIR")``, ``ImageEmbeddings.from_pretrained(DIR)``) builds the
base architecture with random weights, then loads every saved weight over it; the vectors
are identical to those of the in-memory model that was saved.

This module is part of the core: it never imports the training extra.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from langchain_image_embeddings._atomic import (
    fsync_dir,
    sha256_file,
    write_atomic,
    write_atomic_with,
)
from langchain_image_embeddings._optional import require
from langchain_image_embeddings.encoders.base import ImageEncoder, PreprocessConfig
from langchain_image_embeddings.encoders.pooling import ProjectionHead
from langchain_image_embeddings.encoders.towers import TextTower, TowerModule
from langchain_image_embeddings.errors import EncoderError, WeightsNotFoundError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "NEXT_WEIGHTS_FILE",
    "WEIGHTS_FILE",
    "FineTunedEncoder",
    "LocalEncoder",
    "read_config",
    "save_pretrained",
]


#: Identifies the directory layout written by :func:`save_pretrained`.
FORMAT = "langchain-image-embeddings/local"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
#: Where :func:`save_pretrained` writes new weights before ``config.json`` switches to them.
NEXT_WEIGHTS_FILE = "model.next.safetensors"


def _head_config(head: ProjectionHead | None) -> dict[str, int] | None:
    if head is None:
        return None
    return {
        "in_dim": head.in_dim,
        "hidden_dim": head.hidden_dim,
        "embedding_dim": head.embedding_dim,
    }


def _head_from_config(config: Mapping[str, Any] | None) -> ProjectionHead | None:
    if not config:
        return None
    return ProjectionHead(
        int(config["in_dim"]), int(config["embedding_dim"]), int(config["hidden_dim"])
    )


class FineTunedEncoder(ImageEncoder):
    """A base encoder followed by optional projection heads (image and text).

        This is what the training extra produces and what :func:`save_pretrained` writes. The
        image head maps the base image features to the new space; for CLIP-type bases a text
        head may map the text features to the same space (otherwise texts keep the base
        projection, which is right when the base itself was fine-tuned).

        Args:
            base: The encoder whose features are projected (its weights may be fine-tuned too).
            head: Optional projection head for images (``Linear -> ReLU -> Linear``).
            text_head: Optional projection head for texts (CLIP-type bases only).
            name: Name shown in :attr:`spec` (``"finetuned:<name>"``).
            device: Where the model runs.

        Example:
            .. code-block:: python

                from langchain_image_embeddings import create_encoder
                from langchain_image_embeddings.encoders.local import FineTunedEncoder
                from langchain_image_embeddings.encoders.pooling import ProjectionHead
    from langchain_image_embeddings.encoders.towers import TextTower, TowerModule

                base = create_encoder("timm:efficientnet_lite0")
                encoder = FineTunedEncoder(base, head=ProjectionHead(1280, 128))
                print(encoder.dim)  # 128
    """

    backend = "finetuned"

    def __init__(
        self,
        base: ImageEncoder,
        *,
        head: ProjectionHead | None = None,
        text_head: ProjectionHead | None = None,
        name: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(name or base.spec, pretrained=None, device=device or base.device)
        if text_head is not None and not base.has_text:
            raise EncoderError(f"{base.spec} has no text tower: a text head makes no sense")
        self.base = base
        self.head = head
        self.text_head = text_head
        self._container: nn.ModuleDict | None = None

    # -- identity ---------------------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {
            "base": self.base.spec,
            "base_options": self.base._options(),
            "head": _head_config(self.head),
            "text_head": _head_config(self.text_head),
        }

    @property
    def weights_id(self) -> str:
        return f"in-memory fine-tune of {self.base.spec} ({self.base.weights_id})"

    # -- lifecycle --------------------------------------------------------------------------
    def _build(self) -> None:
        self.base.to(self._device)
        self.base.load()
        modules: dict[str, nn.Module] = {"base": self.base.module}
        if self.head is not None:
            modules["head"] = self.head
        if self.text_head is not None:
            modules["text_head"] = self.text_head
        self._container = nn.ModuleDict(modules)

    def _module(self) -> nn.Module:
        assert self._container is not None
        return self._container

    def to(self, device: str) -> ImageEncoder:
        self.base.to(device)
        return super().to(device)

    # -- shape ------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self.head is not None:
            return self.head.embedding_dim
        return self.base.dim

    @property
    def has_text(self) -> bool:
        if not self.base.has_text:
            return False
        # A text tower is only usable when texts land in the same space as images.
        return self.head is None or self.text_head is not None

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.base.preprocess_config

    @property
    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """The base encoder's transform: fine-tuning keeps the preprocessing."""
        return self.base.transform

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        self.load()
        return self.base.preprocess(image)

    # -- forward ----------------------------------------------------------------------------
    def forward_base_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Base image features, before the head (what head-only training caches)."""
        return self.base.forward_images(pixels)

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.base.forward_images(pixels)
        return features if self.head is None else self.head(features)

    def forward_texts(self, texts: Sequence[str]) -> torch.Tensor:
        if self.base.has_text and not self.has_text:
            # The base (a CLIP) embeds text, but the image head moved images to a new space.
            raise EncoderError(
                f"{self.spec} embeds images only: its image projection head was trained "
                "without a text head, so texts of its base model would not land in the same "
                "space. Fine-tune on (image, caption) pairs to get a text head, or embed "
                "images with embed_images()."
            )
        if not self.has_text:
            return super().forward_texts(texts)  # raises the explanatory error
        features = self.base.forward_texts(texts)
        return features if self.text_head is None else self.text_head(features)

    def export_text_tower(self) -> TextTower | None:
        """The base's exportable text tower with the text head on top (``None`` when this
        model embeds images only or its base has no exportable text tower)."""
        if not self.has_text:
            return None
        inner = self.base.export_text_tower()
        if inner is None:
            return None
        base_forward, head = inner.export.module.fn, self.text_head

        def forward(tokens: torch.Tensor) -> torch.Tensor:
            features = base_forward(tokens)
            return features if head is None else head(features)

        # Owned by this model's module (base and heads): every weight is lifted as a parameter.
        module = TowerModule(self.module, forward)
        return dataclasses.replace(inner, export=dataclasses.replace(inner.export, module=module))


class LocalEncoder(FineTunedEncoder):
    """An encoder saved with :func:`save_pretrained`, loaded from its directory.

    Spec: ``"local:DIR"``. The base architecture is built with random weights and every
    saved weight is loaded over it (safetensors only), so no network or base checkpoint is
    needed. open_clip ``hf-hub:`` bases still need their model config from the hub cache.

    Args:
        name: The directory written by :func:`save_pretrained`.
        device: Where the model runs.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings

            embeddings = ImageEmbeddings("local:./my-finetuned-model")
            vectors = embeddings.embed_images_array(["photo.jpg"])
    """

    backend = "local"

    def __init__(self, name: str, *, device: str = "cpu") -> None:
        directory = Path(name).expanduser()
        config = read_config(directory)
        from langchain_image_embeddings.encoders import create_encoder

        base = create_encoder(
            str(config["base_spec"]),
            **dict(config.get("base_options") or {}),
            pretrained=None,
            allow_random_weights=True,
            device=device,
        )
        super().__init__(
            base,
            head=_head_from_config(config.get("head")),
            text_head=_head_from_config(config.get("text_head")),
            name=name,
            device=device,
        )
        self.directory = directory
        self.config = config
        self._digest = ""

    @property
    def weights_id(self) -> str:
        self.load()
        path = _weights_path(self.directory, self.config)
        return f"{path}@sha256:{self._digest[:16]}"

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "training": self.config.get("training", {})}

    def _build(self) -> None:
        super()._build()
        safetensors_torch = require("safetensors.torch", "safetensors")
        path = _weights_path(self.directory, self.config)
        try:
            missing, unexpected = safetensors_torch.load_model(
                self._module(), str(path), strict=False, device="cpu"
            )
        except Exception as exc:
            raise WeightsNotFoundError(f"cannot read {path} as safetensors: {exc}") from exc
        if missing or unexpected:
            raise WeightsNotFoundError(
                f"{path} does not match {self.config['base_spec']}: missing "
                f"{sorted(missing)[:5]} ({len(missing)}), unexpected {sorted(unexpected)[:5]}"
            )
        self._digest = sha256_file(path)
        recorded = self.config.get("weights_sha256")
        if recorded is not None and recorded != self._digest:
            raise WeightsNotFoundError(
                f"{path} is not the weights file {self.directory / CONFIG_FILE} was saved with "
                "(SHA-256 differs): save the model again"
            )
        expected = self.config.get("dim")
        if expected is not None and int(expected) != self.dim:
            raise EncoderError(
                f"{self.directory}: config says dim {expected}, model gives {self.dim}"
            )


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``config.json`` of a saved model directory.

    Raises:
        WeightsNotFoundError: The directory, its config or its weights are missing or invalid.
    """
    path = Path(directory).expanduser()
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise WeightsNotFoundError(
            f"local:{directory}: expected {CONFIG_FILE} and {WEIGHTS_FILE} in {path} "
            "(a directory written by save_pretrained)"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsNotFoundError(f"cannot read {config_file}: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT or "base_spec" not in config:
        raise WeightsNotFoundError(f"{config_file} is not a {FORMAT} config")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise WeightsNotFoundError(
            f"{config_file} has format_version {config['format_version']}; this version of "
            f"langchain-image-embeddings reads up to {FORMAT_VERSION}"
        )
    if not _weights_path(path, config).is_file():
        raise WeightsNotFoundError(
            f"local:{directory}: expected {CONFIG_FILE} and {WEIGHTS_FILE} in {path} "
            "(a directory written by save_pretrained)"
        )
    return config


def save_pretrained(
    encoder: ImageEncoder,
    directory: str | os.PathLike[str],
    *,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Save an encoder (fine-tuned or not) so that ``local:DIR`` reloads it exactly.

    Writes ``model.safetensors`` (all weights, no pickle) and ``config.json`` (base spec and
    options, heads, pooling, preprocessing, dim, ``training`` metadata, the weights'
    SHA-256). Crash-safe: every file goes through the package's atomic, fsynced write, and
    the new weights are written beside the old ones before ``config.json`` switches to them,
    so a save killed at any moment leaves the old model or the new one, both loadable.

    Args:
        encoder: A :class:`FineTunedEncoder` (what training returns) or any backend encoder.
        directory: Target directory (created if needed; existing files are replaced).
        training: JSON-serialisable metadata (loss, mode, epochs, metrics ...).

    Returns:
        The directory.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders.local import save_pretrained

            save_pretrained(encoder, "my-model", training={"loss": "triplet"})
            # later: ImageEmbeddings.from_pretrained("my-model")
    """
    safetensors_torch = require("safetensors.torch", "safetensors")
    encoder = _flatten(encoder)
    encoder.load()
    base = encoder.base
    out = Path(directory).expanduser()
    if out.exists() and not out.is_dir():  # said plainly, not "[Errno 17] File exists"
        raise FileExistsError(f"cannot save a model to {out}: it is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "base_spec": base.spec,
        "base_weights": base.weights_id,
        "base_options": base._options(),
        "head": _head_config(encoder.head),
        "text_head": _head_config(encoder.text_head),
        "pooling": base._options().get("pooling"),
        "preprocess": encoder.preprocess_config.as_dict(),
        "dim": encoder.dim,
        "has_text": encoder.has_text,
        "training": dict(training or {}),
    }
    state_owner = _contiguous_copy(encoder.module)
    # Crash-safe in four atomic steps (each a temp file, fsync, rename, folder fsync): the
    # new weights go to NEXT_WEIGHTS_FILE; config.json switches to them (the commit point);
    # they are renamed to WEIGHTS_FILE; config.json switches back to the plain name. A crash
    # before the commit leaves the old model, after it the new one (see _weights_path).
    next_file = out / NEXT_WEIGHTS_FILE
    write_atomic_with(next_file, lambda tmp: safetensors_torch.save_model(state_owner, str(tmp)))
    config["weights_sha256"] = sha256_file(next_file)
    _write_config(out, {**config, "weights_file": NEXT_WEIGHTS_FILE})
    os.replace(next_file, out / WEIGHTS_FILE)
    fsync_dir(out)
    _write_config(out, config)
    return out


def _write_config(directory: Path, config: Mapping[str, Any]) -> None:
    text = json.dumps(config, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(directory / CONFIG_FILE, text.encode("utf-8"))


def _weights_path(directory: Path, config: Mapping[str, Any]) -> Path:
    """The weights file ``config`` names; after a save interrupted between its last two
    steps the file it names is already renamed to :data:`WEIGHTS_FILE` (checked by hash)."""
    named = directory / str(config.get("weights_file") or WEIGHTS_FILE)
    if named.is_file() or named.name == WEIGHTS_FILE:
        return named
    return directory / WEIGHTS_FILE


def _flatten(encoder: ImageEncoder) -> FineTunedEncoder:
    """One :class:`FineTunedEncoder` level over a backend encoder (what the config describes)."""
    if not isinstance(encoder, FineTunedEncoder):
        return FineTunedEncoder(encoder)
    inner = encoder.base
    if not isinstance(inner, FineTunedEncoder):
        return encoder
    if encoder.head is None and encoder.text_head is None:
        return _flatten(inner)
    if inner.head is None and inner.text_head is None:
        return FineTunedEncoder(
            _flatten(inner).base,
            head=encoder.head,
            text_head=encoder.text_head,
            device=encoder.device,
        )
    raise EncoderError(
        "cannot save projection heads stacked on a model that already has one; fine-tune "
        "the original base model, or use mode='partial'/'full' to train the saved model"
    )


def _contiguous_copy(module: nn.Module) -> nn.Module:
    """``module`` itself when every tensor is contiguous, else a CPU copy that is."""
    if all(t.is_contiguous() for t in module.state_dict().values()):
        return module
    import copy

    clone = copy.deepcopy(module).cpu()
    with torch.no_grad():
        for tensor in [*clone.parameters(), *clone.buffers()]:
            tensor.data = tensor.data.contiguous()
    return clone
