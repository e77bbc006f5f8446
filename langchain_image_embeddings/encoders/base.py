"""The encoder interface every backend implements."""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from langchain_image_embeddings.errors import EncoderError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from langchain_image_embeddings.encoders.towers import TextTower, TowerExport

__all__ = [
    "DEFAULT_WEIGHTS",
    "EncoderRuntime",
    "ImageEncoder",
    "PreprocessConfig",
    "pretrained_option",
]


#: Tag meaning "the backend's recommended weights for this architecture".
DEFAULT_WEIGHTS = "default"


def pretrained_option(value: object, spec: str) -> str | None:
    """``pretrained`` as this package reads it: a tag, a checkpoint path or ``None``.

    ``True`` / ``False`` (timm's ``create_model(pretrained=...)`` idiom) mean the default
    weights / no weights, and a path object is its path; anything else is refused here,
    instead of failing deep inside a backend with a bare ``AttributeError``.

    Raises:
        EncoderError: Not a string, a path, a bool or ``None``.
    """
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_WEIGHTS
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[no-any-return]
    if isinstance(value, str) and value.strip():
        return value
    raise EncoderError(
        f"{spec}: pretrained={value!r} is not a weights tag, a checkpoint path, "
        f"{DEFAULT_WEIGHTS!r}, True/False or None"
    )


@dataclass(frozen=True)
class PreprocessConfig:
    """How an encoder turns an RGB image into its input tensor, as the backend defines it.

    Attributes:
        input_size: ``(height, width)`` of the model input.
        mean: Per-channel mean subtracted after scaling to ``[0, 1]``.
        std: Per-channel standard deviation divided by.
        interpolation: Resize filter (``"bicubic"``, ``"bilinear"``, ...).
        resize_mode: ``"shortest"`` (resize the short side, then centre-crop) or ``"squash"``.
        crop_pct: Fraction of the resized short side kept by the centre crop.
    """

    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    crop_pct: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view (for fingerprints and saved configs)."""
        return asdict(self)


class EncoderRuntime(Protocol):
    """What an encoder asks of an exported runtime (ONNX Runtime, OpenVINO) that answers
    its inference calls instead of eager torch.

    :class:`~langchain_image_embeddings.encoders.runtimes.ExportedRuntime` is the one
    implementation; it depends on this interface, never the reverse.

    Example:
        .. code-block:: python

            import torch

            class FlattenRuntime:  # satisfies EncoderRuntime: name + the two encode calls
                name = "flatten"

                def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
                    return pixels.flatten(1)

                def encode_texts(self, texts: list[str]) -> torch.Tensor | None:
                    return None  # the encoder runs its torch text tower

            runtime: EncoderRuntime = FlattenRuntime()
    """

    @property
    def name(self) -> str:
        """``"onnx"`` or ``"openvino"``."""

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features ``(N, dim)`` for a preprocessed batch."""

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor | None:
        """Text features ``(N, dim)``, or ``None`` to let the encoder run torch."""


class ImageEncoder(abc.ABC):
    """A local image (and optionally text) encoder.

    Construction is cheap: weights load on first use (:meth:`load`). Subclasses implement
    :meth:`_build`, :meth:`forward_images` and, when the model has a text tower,
    :meth:`forward_texts`. :meth:`encode_images` / :meth:`encode_texts` are the inference
    entry points: ``eval()`` mode, ``torch.inference_mode()``, unnormalised outputs (the
    caller, usually :class:`~langchain_image_embeddings.ImageEmbeddings`, normalises).

    Example:
        .. code-block:: python

            from langchain_image_embeddings import create_encoder

            encoder = create_encoder("timm:efficientnet_lite0")
            pixels = encoder.preprocess_batch([image])
            vectors = encoder.encode_images(pixels)   # (1, encoder.dim)
    """

    #: Backend name, the part of the spec before the colon.
    backend: str = ""
    #: An exported runtime (ONNX Runtime, OpenVINO) answering :meth:`encode_images` /
    #: :meth:`encode_texts` instead of eager torch; set by ``runtimes.with_runtime``.
    _runtime: EncoderRuntime | None = None

    def __init__(self, name: str, *, pretrained: str | None, device: str = "cpu") -> None:
        self.name = name
        self.pretrained = pretrained
        self._device = device
        self._loaded = False
        self._lock = threading.Lock()
        self._transform: Callable[[Image.Image], torch.Tensor] | None = None

    # -- pickling (multiprocessing, Ray, copy.deepcopy) -------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)  # a lock cannot be pickled; each copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- identity ---------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """The ``"backend:name"`` string this encoder was created from."""
        return f"{self.backend}:{self.name}"

    def fingerprint(self) -> dict[str, Any]:
        """What determines the vectors: spec, weights, preprocessing, dimension, options."""
        self.load()
        return {
            "spec": self.spec,
            "weights": self.weights_id,
            "preprocess": self.preprocess_config.as_dict(),
            "dim": self.dim,
            "options": self._options(),
        }

    @property
    def weights_id(self) -> str:
        """A string that identifies the weights (tag, hub id or file path)."""
        return str(self.pretrained)

    def _options(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, pretrained={self.pretrained!r})"

    # -- lifecycle --------------------------------------------------------------------------
    def load(self) -> None:
        """Build the model and load its weights, once; thread-safe."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._build()
            module = self._module()
            module.eval()
            module.to(self._device)
            self._loaded = True

    @property
    def runtime(self) -> str:
        """Where inference runs: ``"torch"``, ``"onnx"`` or ``"openvino"``."""
        return "torch" if self._runtime is None else self._runtime.name

    @property
    def is_loaded(self) -> bool:
        """Whether :meth:`load` has run."""
        return self._loaded

    @abc.abstractmethod
    def _build(self) -> None:
        """Create the model, load the weights and set the preprocessing transform."""

    @property
    def module(self) -> torch.nn.Module:
        """The ``torch.nn.Module`` holding every weight (for ``.to()``, training, saving)."""
        self.load()
        return self._module()

    @abc.abstractmethod
    def _module(self) -> torch.nn.Module:
        """The built module; called only after :meth:`_build`."""

    @property
    def device(self) -> str:
        """The device the model runs on."""
        return self._device

    def to(self, device: str) -> ImageEncoder:
        """Move the model to ``device`` (now if loaded, else at load time)."""
        self._device = device
        if self._loaded:
            self.module.to(device)
        return self

    # -- shape ------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Length of the vectors this encoder produces."""

    @property
    def has_text(self) -> bool:
        """Whether the model embeds text into the image space (CLIP-type models)."""
        return False

    @property
    @abc.abstractmethod
    def preprocess_config(self) -> PreprocessConfig:
        """The backend's preprocessing for this model."""

    # -- preprocessing ----------------------------------------------------------------------
    @property
    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """The backend's own transform (PIL RGB image -> ``(3, H, W)`` tensor)."""
        self.load()
        assert self._transform is not None
        return self._transform

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Apply the backend's own transform to one RGB image: ``(3, H, W)`` float tensor."""
        self.load()
        assert self._transform is not None
        return self._transform(image)

    def preprocess_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Preprocess and stack images into one ``(N, 3, H, W)`` batch."""
        import torch

        return torch.stack([self.preprocess(image) for image in images])

    # -- forward ----------------------------------------------------------------------------
    @abc.abstractmethod
    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features ``(N, dim)`` from a preprocessed batch; differentiable."""

    def forward_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Text features ``(N, dim)``; differentiable. Only for models with a text tower."""
        raise EncoderError(
            f"{self.spec} has no text tower: it embeds images only. Use a CLIP-type model "
            "(e.g. 'open_clip:ViT-B-32') to embed text, or embed images with embed_images()."
        )

    # -- export (the runtimes call these through the interface) -----------------------------
    def export_image_tower(self) -> TowerExport:
        """The image tower as a module to export: pixels ``(N, 3, H, W)`` float32 -> features.

        Whatever the backend (open_clip, timm, torchvision, a fine-tuned head on top), it is
        :meth:`forward_images` over the encoder's module, with a dynamic batch axis.
        """
        import torch

        from langchain_image_embeddings.encoders.towers import TRACE_BATCH, TowerExport, TowerModule

        height, width = self.preprocess_config.input_size
        example = torch.randn(TRACE_BATCH, 3, height, width)
        module = TowerModule(self.module, self.forward_images)
        return TowerExport("image", module, example, ("batch",), "pixels")

    def export_text_tower(self) -> TextTower | None:
        """The text tower as a module to export (tokens -> features) with its tokenizer, or
        ``None`` when this encoder has none that can be exported; a runtime then runs the
        torch text tower (same vectors, eager speed). Backends with a text tower override it.
        """
        return None

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Inference: eval mode, ``torch.inference_mode()``, on the encoder's device."""
        import torch

        self.load()
        if self._runtime is not None:
            return self._runtime.encode_images(pixels)
        self._ensure_eval()
        with torch.inference_mode():
            return self.forward_images(pixels.to(self._device, non_blocking=True))

    def _ensure_eval(self) -> None:
        # A training loop may have left the module in train mode; BatchNorm and dropout would
        # then change the vectors (open_clip even returns models in train mode).
        if self.module.training:
            self.module.eval()

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Inference on a batch of texts (tokenised at once)."""
        import torch

        if not self.has_text:
            self.forward_texts(texts)  # raises the explanatory error
        self.load()
        if self._runtime is not None:
            features = self._runtime.encode_texts(list(texts))
            if features is not None:
                return features
        self._ensure_eval()
        with torch.inference_mode():
            return self.forward_texts(list(texts))
