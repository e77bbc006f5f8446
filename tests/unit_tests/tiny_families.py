"""Tiny models of the registry's families, built offline from the same classes.

The registry's open_clip configs are shrunk in place (``open_clip.factory._MODEL_CONFIGS``,
restored by ``monkeypatch``): one layer, width 32, the same tower classes, pooling, masks and
tokenizer kind. timm image towers (SigLIP, EVA02, PE-Core, MobileCLIP) are shrunk by the
keyword arguments timm's model functions accept (``depth``, ``embed_dim``, FastViT's
``layers``), so a So400m or an L/14 builds in a second on a shared CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: Words of the tiny Hugging Face tokenizer (SigLIP, XLM-R stand-in); ids are the positions.
WORDS = ["<pad>", "</s>", "<unk>", "<s>", "a", "photo", "of", "cat", "dog", "on", "sofa"]


def tiny_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer saved with transformers' ``save_pretrained`` into ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>",
        cls_token="<s>",
        sep_token="</s>",
    )
    fast.save_pretrained(str(folder))
    return folder


def tiny_xlmr_config(folder: Path) -> Path:
    """A one-layer XLM-RoBERTa ``config.json`` (what ``xlm-roberta-base`` gives from the hub)."""
    from transformers import XLMRobertaConfig

    XLMRobertaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=0,
        bos_token_id=3,
        eos_token_id=1,
    ).save_pretrained(str(folder))
    return folder


def _shrink(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config["embed_dim"] = 32  # SigLIP's image tower has no projection: width == embed_dim
    vision = config["vision_cfg"]
    if "timm_model_name" not in vision:
        vision.update(layers=1, width=32, head_width=16)
    text = config["text_cfg"]
    if "hf_model_name" not in text:
        text.update(width=32, heads=2, layers=1)
        if text.get("hf_tokenizer_name"):
            text["vocab_size"] = len(WORDS)
    return config


def _tiny_timm(create: Callable[..., Any]) -> Callable[..., Any]:
    def create_model(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("vit_base_mci"):  # its conv stem fixes the width
            kwargs.update(depth=1)
        elif name.startswith(("vit_", "eva02_")):
            kwargs.update(depth=1, embed_dim=32, num_heads=2)
        elif name.startswith("fastvit_mci"):
            kwargs.update(layers=(1, 1, 1, 1), embed_dims=(8, 16, 32, 64))
        return create(name, *args, **kwargs)

    return create_model


def shrink_registry(monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
    """Shrink the open_clip configs of ``names`` and every timm model built meanwhile."""
    import open_clip.factory
    import timm

    for name in names:
        shrunk = _shrink(open_clip.factory._MODEL_CONFIGS[name])
        monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, name, shrunk)
    monkeypatch.setattr(timm, "create_model", _tiny_timm(timm.create_model))
