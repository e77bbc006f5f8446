"""open_clip backend: CLIP-family models with image and text towers.

Specs: ``"open_clip:ViT-B-32"`` (any ``open_clip.list_models()`` architecture) with any
``pretrained`` tag (``open_clip.list_pretrained_tags_by_model``), a local checkpoint path, or
``"open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.encoders.base import (
    DEFAULT_WEIGHTS,
    ImageEncoder,
    PreprocessConfig,
    pretrained_option,
)
from langchain_image_embeddings.encoders.folders import (
    TEXT_DIR,
    TOKENIZER_FILES,
    read_model_folder,
    tokenizer_dir,
)
from langchain_image_embeddings.encoders.towers import TextTower, TowerExport, TowerModule
from langchain_image_embeddings.encoders.weights import looks_like_path, offline_hint
from langchain_image_embeddings.errors import (
    EncoderError,
    MissingDependencyError,
    WeightsNotFoundError,
)

__all__ = ["PREFERRED_TAGS", "OpenCLIPEncoder", "require_transformers", "tag_settings"]


#: The default weights tag per architecture where one is clearly best for retrieval.
PREFERRED_TAGS: dict[str, str] = {
    "ViT-B-32": "laion2b_s34b_b79k",
    "ViT-B-16": "laion2b_s34b_b88k",
    "ViT-L-14": "laion2b_s32b_b82k",
    "ViT-H-14": "laion2b_s32b_b79k",
    "RN50": "openai",
}


class OpenCLIPEncoder(ImageEncoder):
    """An open_clip model: images and texts into one space.

    Args:
        name: open_clip architecture (``"ViT-B-32"``) or ``"hf-hub:org/repo"``.
        pretrained: ``"default"`` (e.g. ``laion2b_s34b_b79k`` for ViT-B-32), any tag, a local
            checkpoint path, a model folder (weights + tokenizer, what ``imgemb models
            download`` writes: fully offline), or ``None`` for random weights (needs
            ``allow_random_weights``).
        tokenizer: A local tokenizer folder (or a file in it) for models whose tokenizer
            comes from the Hugging Face hub (SigLIP, SigLIP 2, XLM-R); default: the one in
            the ``pretrained`` folder, else the hub.
        allow_random_weights: Permit ``pretrained=None``.
        cache_dir: Where open_clip looks for / stores downloaded weights.
        device: Where the model runs.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder

            encoder = OpenCLIPEncoder("ViT-B-32", pretrained="laion2b_s34b_b79k")
            text_vectors = encoder.encode_texts(["a photo of a cat"])
    """

    backend = "open_clip"

    def __init__(
        self,
        name: str,
        *,
        pretrained: str | os.PathLike[str] | bool | None = DEFAULT_WEIGHTS,
        allow_random_weights: bool = False,
        tokenizer: str | os.PathLike[str] | None = None,
        cache_dir: str | None = None,
        device: str = "cpu",
    ) -> None:
        given, pretrained = pretrained, pretrained_option(pretrained, f"open_clip:{name}")
        if pretrained is None and not allow_random_weights and not name.startswith("hf-hub:"):
            raise EncoderError(
                f"open_clip:{name} with pretrained={given!r} would use random weights; pass "
                "allow_random_weights=True if that is what you want"
            )
        super().__init__(name, pretrained=pretrained, device=device)
        self.cache_dir = cache_dir
        self.tokenizer = None if tokenizer is None else os.fspath(tokenizer)
        self._model: nn.Module | None = None
        self._tokenizer: Callable[..., torch.Tensor] | None = None
        self._preprocess: PreprocessConfig | None = None

    @property
    def weights_id(self) -> str:
        return str(self._resolve_tag())

    def _resolve_tag(self) -> str | None:
        if self.name.startswith("hf-hub:"):
            return None
        if self.pretrained != DEFAULT_WEIGHTS:
            return self.pretrained
        if self.name in PREFERRED_TAGS:
            return PREFERRED_TAGS[self.name]
        open_clip = require("open_clip", "open_clip_torch")
        tags = list(open_clip.list_pretrained_tags_by_model(self.name))
        if not tags:
            raise WeightsNotFoundError(
                f"open_clip has no pretrained weights registered for {self.name!r}; pass "
                "pretrained='/path/to/checkpoint' or choose one of open_clip.list_pretrained()"
            )
        laion = [t for t in tags if t.startswith("laion2b")]
        return str((laion or tags)[0])

    def _build(self) -> None:
        # A mistyped checkpoint path fails here, before ``import open_clip`` (which imports
        # its CoCa and Hugging Face towers, transformers included: seconds on a cold start).
        tag = None if self.name.startswith("hf-hub:") else self.pretrained
        if tag is not None and tag != DEFAULT_WEIGHTS and looks_like_path(tag):
            _local_path(tag, self.spec)
        open_clip = require("open_clip", "open_clip_torch")
        if not self.name.startswith("hf-hub:") and self.name not in open_clip.list_models():
            raise EncoderError(
                f"open_clip has no architecture {self.name!r}; see open_clip.list_models() "
                "or use 'open_clip:hf-hub:<org>/<repo>'"
            )
        tag = self._resolve_tag()
        weights, settings, text_dir = self._local_files(open_clip, tag)
        text_cfg: dict[str, Any] = dict(
            (open_clip.get_model_config(self.name) or {}).get("text_cfg", {})
            if not self.name.startswith("hf-hub:")
            else {}
        )
        if text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name"):
            require_transformers(self.spec)
        # The tokenizer first: a missing tokenizer file fails in a second, not after the build.
        self._tokenizer = self._make_tokenizer(open_clip, text_cfg, text_dir)
        options = _weights_options(settings)
        if text_cfg.get("hf_model_name"):
            options.update(self._text_tower_options(text_cfg, text_dir))
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.name,
                pretrained=weights if weights is not None else tag,
                device="cpu",
                cache_dir=self.cache_dir,
                **options,
            )
        except Exception as exc:
            if isinstance(exc, ImportError):
                raise MissingDependencyError(
                    f"{self.spec} needs {exc.name or exc}: pip install "
                    "'langchain-image-embeddings[open-clip]'"
                ) from exc
            if weights is not None or (tag is not None and looks_like_path(tag)):
                raise WeightsNotFoundError(
                    f"cannot load {weights or tag} into open_clip:{self.name}: {exc}"
                ) from exc
            where = self.cache_dir or _default_cache()
            raise offline_hint(self.spec, str(tag or self.name), where, exc) from exc
        # open_clip hands back models in train mode; eval() happens in ImageEncoder.load().
        self._model = model
        self._transform = preprocess
        cfg: dict[str, Any] = dict(getattr(model.visual, "preprocess_cfg", {}))
        size = cfg.get("size", getattr(model.visual, "image_size", 224))
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        self._preprocess = PreprocessConfig(
            input_size=(int(height), int(width)),
            mean=tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
            std=tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
            interpolation=str(cfg.get("interpolation", "bicubic")),
            resize_mode=str(cfg.get("resize_mode", "shortest")),
            crop_pct=1.0,
        )

    def _local_files(
        self, open_clip: Any, tag: str | None
    ) -> tuple[str | None, dict[str, Any], Path | None]:
        """The weights file, the settings its weights need and the tokenizer folder, from
        ``pretrained`` (a tag, a file, a model folder) and ``tokenizer``."""
        text_dir = None if self.tokenizer is None else _tokenizer_folder(self.tokenizer, self.spec)
        if tag is None or not looks_like_path(tag):
            return None, {}, text_dir
        path = _local_path(tag, self.spec)
        if path.is_dir():
            folder = read_model_folder(path, model=self.spec)
            settings = dict(folder.settings) or tag_settings(open_clip, self.name, folder.tag)
            return str(folder.weights), settings, text_dir or folder.text
        return str(path), tag_settings(open_clip, self.name, None), text_dir

    def _make_tokenizer(
        self, open_clip: Any, text_cfg: dict[str, Any], text_dir: Path | None
    ) -> Callable[..., torch.Tensor]:
        hub_name = text_cfg.get("hf_tokenizer_name")
        if hub_name and text_dir is not None:
            from open_clip.tokenizer import HFTokenizer

            try:
                tokenizer: Callable[..., torch.Tensor] = HFTokenizer(
                    str(text_dir),
                    context_length=text_cfg.get("context_length", 77),
                    tokenizer_mode=text_cfg.get("tokenizer_mode"),
                    **dict(text_cfg.get("tokenizer_kwargs") or {}),
                )
            except Exception as exc:
                raise WeightsNotFoundError(
                    f"tokenizer for {self.spec}: cannot read {text_dir} "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            return tokenizer
        if text_dir is not None and not self.name.startswith("hf-hub:"):
            raise EncoderError(
                f"{self.spec} uses open_clip's own tokenizer (shipped with open_clip): "
                "tokenizer= is for models with a Hugging Face tokenizer (SigLIP, XLM-R)"
            )
        try:
            built: Callable[..., torch.Tensor] = open_clip.get_tokenizer(
                self.name, cache_dir=self.cache_dir
            )
        except ImportError as exc:
            raise MissingDependencyError(
                f"the tokenizer of {self.spec} needs {exc.name or exc}: pip install "
                "'langchain-image-embeddings[open-clip]'"
            ) from exc
        except Exception as exc:
            if not hub_name:
                raise
            raise WeightsNotFoundError(
                f"tokenizer for {self.spec}: it comes from the Hugging Face hub "
                f"({hub_name}) and could not be loaded ({type(exc).__name__}: "
                f"{str(exc)[:200]}). Offline, pass tokenizer='/path/to/tokenizer-folder' or "
                "pretrained= a folder written by 'imgemb models download "
                f"{self.spec}' (weights and tokenizer)"
            ) from exc
        return built

    def _text_tower_options(
        self, text_cfg: dict[str, Any], text_dir: Path | None
    ) -> dict[str, Any]:
        """A Hugging Face text tower (XLM-R) built from the local ``config.json`` beside its
        tokenizer, with no hub weights (the CLIP checkpoint holds them, or random ones were
        asked for)."""
        if text_dir is not None and (text_dir / "config.json").is_file():
            local = {**text_cfg, "hf_model_name": str(text_dir), "hf_model_pretrained": False}
            return {"text_cfg": local}
        if text_dir is not None or _hub_offline():
            where = f"in {text_dir}" if text_dir is not None else "(no tokenizer= folder given)"
            raise WeightsNotFoundError(
                f"text tower of {self.spec}: its architecture is the Hugging Face config "
                f"{text_cfg['hf_model_name']!r}, and there is no config.json {where}. Offline, "
                f"pass pretrained= a folder written by 'imgemb models download {self.spec}'"
            )
        return {}

    def _module(self) -> nn.Module:
        assert self._model is not None
        return self._model

    @property
    def dim(self) -> int:
        model = self.module
        out = getattr(model.visual, "output_dim", None)
        if out is None:  # pragma: no cover - every open_clip tower sets it today
            out = model.text_projection.shape[-1]  # type: ignore[index]
        return int(out)

    @property
    def has_text(self) -> bool:
        return True

    @property
    def preprocess_config(self) -> PreprocessConfig:
        self.load()
        assert self._preprocess is not None
        return self._preprocess

    @property
    def logit_scale(self) -> float:
        """The model's learned inverse temperature (``exp(logit_scale)``)."""
        return float(self.module.logit_scale.detach().exp())  # type: ignore[operator]

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Tokenise a batch of texts at once with the model's tokenizer."""
        self.load()
        assert self._tokenizer is not None
        return self._tokenizer(list(texts))

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(pixels)  # type: ignore[operator, no-any-return]

    def forward_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenize(texts).to(self._device)
        model = self.module
        if _can_trim_padding(model, self._tokenizer):
            return _encode_text_trimmed(model, tokens)
        return model.encode_text(tokens)  # type: ignore[operator, no-any-return]

    def export_text_tower(self) -> TextTower:
        """The CLIP text tower from tokens, with dynamic batch *and* sequence axes where the
        padding trim applies, so a runtime keeps the trim of the torch path."""
        self.load()
        model = self.module
        trim = _can_trim_padding(model, self._tokenizer)
        encode = _encode_text_trimmed if trim else _encode_text_full

        def forward(tokens: torch.Tensor) -> torch.Tensor:
            return encode(model, tokens)

        example = self.tokenize(["a photo of a cat", "a diagram"])
        dynamic = ("batch", "sequence") if trim else ("batch",)
        export = TowerExport("text", TowerModule(model, forward), example, dynamic, "tokens")
        return TextTower(export, self.tokenize, trim)


def _encode_text_full(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    return model.encode_text(tokens)  # type: ignore[no-any-return]


def _can_trim_padding(model: nn.Module, tokenizer: object) -> bool:
    """Whether padding can be cut from a batch without changing the vectors.

    True for open_clip's own CLIP text tower with its BPE tokenizer (pads with 0) and a causal
    mask: tokens after the end-of-text token never influence it, and it is what is pooled.
    """
    import open_clip

    return (
        type(model) is open_clip.CLIP
        and type(tokenizer).__name__ == "SimpleTokenizer"
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", None) in ("argmax", "eos")
    )


def _encode_text_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``CLIP.encode_text`` on tokens cut to the batch's longest text (3.5x faster measured).

    The padded 77-token context costs as much for "a cat" as for a long caption; with a causal
    mask the first ``n`` positions do not depend on the rest, so the result is the same.
    """
    from open_clip.transformer import text_global_pool

    length = max(1, int((tokens != 0).sum(dim=1).max()))
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(
        x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
    )
    if model.text_projection is not None:
        x = (
            model.text_projection(x)
            if isinstance(model.text_projection, nn.Linear)
            else x @ model.text_projection
        )
    return x  # type: ignore[no-any-return]


def require_transformers(spec: str) -> None:
    """Import ``transformers`` (SigLIP and XLM-R tokenizers, XLM-R text towers) or say which
    extra installs it, instead of a raw ``ModuleNotFoundError`` from inside open_clip."""
    try:
        require("transformers", "transformers")
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"{spec} needs transformers (its tokenizer or text tower comes from it): "
            "pip install 'langchain-image-embeddings[open-clip]'"
        ) from exc


def _local_path(pretrained: str, spec: str) -> Path:
    """The checkpoint file or model folder ``pretrained`` names; a missing one is refused."""
    path = Path(pretrained).expanduser()
    if not (path.is_dir() or path.is_file()):
        raise WeightsNotFoundError(
            f"weights for {spec}: no file or folder at {path}. Pass pretrained= a "
            "checkpoint file or a folder written by 'imgemb models download'"
        )
    return path


def _tokenizer_folder(value: str, spec: str) -> Path:
    """The folder ``tokenizer=`` names: a tokenizer folder, a file in one, or a model folder
    holding one in ``text/``."""
    path = Path(value).expanduser()
    if path.is_file():
        path = path.parent
    for candidate in (path, path / TEXT_DIR):
        if tokenizer_dir(candidate):
            return candidate
    what = "no such file or folder" if not path.exists() else "no tokenizer files in it"
    raise WeightsNotFoundError(
        f"tokenizer for {spec}: {path}: {what} (expected one of {', '.join(TOKENIZER_FILES)}, "
        "as Hugging Face's save_pretrained writes them)"
    )


#: open_clip's per-tag settings that change the vectors when weights come from a file.
_TAG_SETTINGS = ("mean", "std", "interpolation", "resize_mode", "quick_gelu")


def tag_settings(open_clip: Any, name: str, tag: str | None) -> dict[str, Any]:
    """The preprocessing and activation the weights of ``tag`` were trained with; for weights
    of unknown tag, those every tag of the architecture agrees on.

    open_clip applies them only when it downloads a tag itself: SigLIP weights read from a
    file would otherwise be normalised with CLIP's mean and resized the wrong way.
    """
    tags = [tag] if tag else list(open_clip.list_pretrained_tags_by_model(name))
    configs = [open_clip.get_pretrained_cfg(name, t) or {} for t in tags]
    settings: dict[str, Any] = {}
    for key in _TAG_SETTINGS:
        values = {json.dumps(c.get(key, False if key == "quick_gelu" else None)) for c in configs}
        if len(values) == 1 and configs:
            value = json.loads(values.pop())
            if value is not None:
                settings[key] = value
    return settings


def _weights_options(settings: dict[str, Any]) -> dict[str, Any]:
    """``create_model_and_transforms`` keyword arguments for :func:`tag_settings`."""
    names = {
        "mean": "image_mean",
        "std": "image_std",
        "interpolation": "image_interpolation",
        "resize_mode": "image_resize_mode",
        "quick_gelu": "force_quick_gelu",
    }
    options: dict[str, Any] = {}
    for key, option in names.items():
        if key in settings:
            value = settings[key]
            options[option] = tuple(value) if isinstance(value, list) else value
    return options


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _default_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "the Hugging Face cache"
