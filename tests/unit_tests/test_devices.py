"""Device and precision decisions live in one module, for inference and training alike."""

from __future__ import annotations

import importlib

import pytest
import torch

from langchain_image_embeddings import devices, embeddings
from langchain_image_embeddings.pipeline import _stream as pipeline_stream

# the training loops take their autocast choice from devices.py
trainer_base = importlib.import_module("langchain_image_embeddings.training.trainer_base")


def test_one_home_for_the_decisions() -> None:
    # the pipeline, ImageEmbeddings and training use the very same functions
    assert pipeline_stream.resolve_precision is devices.resolve_precision
    assert pipeline_stream.autocast_context is devices.autocast_context
    assert embeddings.resolve_device is devices.resolve_device
    assert trainer_base.training_autocast_dtype is devices.training_autocast_dtype


def test_training_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    assert devices.training_autocast_dtype("cpu") is None  # never on CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert devices.training_autocast_dtype("cuda") is torch.bfloat16
    assert devices.training_autocast_dtype("cuda", enabled=False) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert devices.training_autocast_dtype("cuda:0") is torch.float16


def test_precision_is_checked_where_it_is_taken() -> None:
    assert devices.PRECISIONS == ("auto", "fp32", "fp16", "bf16")
    with pytest.raises(ValueError, match="precision"):
        embeddings.ImageEmbeddings("timm:efficientnet_lite0", precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision must be one of"):
        devices.resolve_precision("fp8", "cpu")
