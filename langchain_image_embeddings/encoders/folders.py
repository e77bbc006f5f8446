"""Model folders: the files one model needs, in one directory, read without a network.

``imgemb models download NAME --to DIR`` (see :mod:`~langchain_image_embeddings.encoders.download`)
writes such a folder where the hub is reachable; an air-gapped machine then loads it with
``pretrained=DIR``::

    DIR/
      imgemb-model.json              the manifest: spec, weights tag, file names, SHA-256,
                                     the preprocessing the weights were trained with
      open_clip_model.safetensors    the weights file, as published
      text/                          the tokenizer files (tokenizer.json, ...) and, for a
                                     Hugging Face text tower (XLM-R), its config.json

A folder without a manifest is read too (a Hugging Face snapshot, a hand-made folder): the
weights file is found by its usual names and the tokenizer files in the folder itself or in
``text/``.

This module reads files only: no torch, no hub.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_image_embeddings.errors import WeightsNotFoundError

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "TEXT_DIR",
    "TOKENIZER_FILES",
    "WEIGHT_FILE_NAMES",
    "ModelFolder",
    "find_text_dir",
    "read_model_folder",
    "tokenizer_dir",
    "weights_file",
]

MANIFEST_FILE = "imgemb-model.json"
MANIFEST_FORMAT = "langchain-image-embeddings/model-folder"
MANIFEST_VERSION = 1
#: Sub-folder holding the tokenizer (and a Hugging Face text tower's ``config.json``).
TEXT_DIR = "text"
#: Weights files by the names open_clip, timm and transformers publish them under, preferred first.
WEIGHT_FILE_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
#: Any of these in a folder makes it a tokenizer folder that ``AutoTokenizer`` can read.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
)


@dataclass(frozen=True)
class ModelFolder:
    """What a model folder holds, resolved to paths.

    Attributes:
        path: The folder.
        weights: The weights file in it.
        text: The folder with the tokenizer files (``None``: the model needs none, or the
            folder has none).
        spec: The ``"backend:name"`` the folder was written for (``None`` without a manifest).
        tag: The pretrained tag the weights came from (``None`` without a manifest).
        settings: Backend settings the weights need (open_clip: ``mean``, ``std``,
            ``interpolation``, ``resize_mode``, ``quick_gelu``).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "model.safetensors").write_bytes(b"")
        >>> read_model_folder(folder, model="timm:resnet18").weights.name
        'model.safetensors'
    """

    path: Path
    weights: Path
    text: Path | None = None
    spec: str | None = None
    tag: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


def tokenizer_dir(path: Path) -> bool:
    """Whether ``path`` is a folder holding tokenizer files."""
    return path.is_dir() and any((path / name).is_file() for name in TOKENIZER_FILES)


def find_text_dir(path: Path) -> Path | None:
    """The tokenizer folder of a model folder: ``text/`` or the folder itself."""
    for candidate in (path / TEXT_DIR, path):
        if tokenizer_dir(candidate):
            return candidate
    return None


def weights_file(path: Path, *, model: str) -> Path:
    """The weights file in a folder without a manifest (by the usual published names).

    Raises:
        WeightsNotFoundError: No weights file, or several that none of the usual names picks.
    """
    for name in WEIGHT_FILE_NAMES:
        if (path / name).is_file():
            return path / name
    found = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise WeightsNotFoundError(
            f"weights for {model}: no weights file in {path} (looked for {MANIFEST_FILE}, "
            f"{', '.join(WEIGHT_FILE_NAMES[:3])}, ... or one *.safetensors / *.bin / *.pt file). "
            "Write the folder with: imgemb models download NAME --to DIR"
        )
    raise WeightsNotFoundError(
        f"weights for {model}: {path} holds several weights files "
        f"({', '.join(p.name for p in found)}); pass pretrained= the one to load"
    )


def read_model_folder(path: str | os.PathLike[str], *, model: str) -> ModelFolder:
    """Read a model folder: its manifest when it has one, else its files by their names.

    Args:
        path: The folder.
        model: The spec being loaded (named in errors, checked against the manifest).

    Raises:
        WeightsNotFoundError: The folder, its manifest or a file the manifest names is
            missing or unreadable, or the manifest is for another model.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise WeightsNotFoundError(f"weights for {model}: {folder} is not a folder")
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        return ModelFolder(folder, weights_file(folder, model=model), find_text_dir(folder))
    manifest = _read_manifest(manifest_path)
    spec = str(manifest["spec"])
    if _canonical(spec) != _canonical(model):
        raise WeightsNotFoundError(
            f"{folder} holds {spec}, not {model}: load it with the model {spec!r} "
            f"(or download {model} into another folder)"
        )
    weights = folder / str(manifest["weights"])
    if not weights.is_file():
        raise WeightsNotFoundError(
            f"weights for {model}: {weights} is missing ({manifest_path} names it); "
            "copy the whole folder written by 'imgemb models download'"
        )
    text: Path | None = None
    if manifest.get("text"):
        text = folder / str(manifest["text"])
        if not tokenizer_dir(text):
            raise WeightsNotFoundError(
                f"tokenizer for {model}: no tokenizer files in {text} ({manifest_path} names "
                f"it; expected one of {', '.join(TOKENIZER_FILES[:3])}, ...)"
            )
    return ModelFolder(
        folder,
        weights,
        text,
        spec,
        None if manifest.get("pretrained") is None else str(manifest["pretrained"]),
        dict(manifest.get("settings") or {}),
    )


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsNotFoundError(f"cannot read {path}: {exc}") from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or "spec" not in manifest
        or "weights" not in manifest
    ):
        raise WeightsNotFoundError(f"{path} is not a {MANIFEST_FORMAT} manifest")
    if int(manifest.get("format_version", 0)) > MANIFEST_VERSION:
        raise WeightsNotFoundError(
            f"{path} has format_version {manifest['format_version']}; this version of "
            f"langchain-image-embeddings reads up to {MANIFEST_VERSION}"
        )
    return manifest


def _canonical(spec: str) -> str:
    backend, _, name = spec.partition(":")
    backend = backend.strip().lower().replace("-", "_")
    return f"{'open_clip' if backend == 'openclip' else backend}:{name.strip()}"
