"""The extras that error messages name exist, and ``[all]`` installs every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from langchain_image_embeddings import _optional
from langchain_image_embeddings.errors import MissingDependencyError

_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_EXTRAS: dict[str, list[str]] = tomllib.loads(_PYPROJECT.read_text())["project"][
    "optional-dependencies"
]


def test_every_extra_an_error_names_exists() -> None:
    missing = {module: extra for module, extra in _optional._EXTRAS.items() if extra not in _EXTRAS}
    assert not missing, f"errors would name extras pyproject.toml lacks: {missing}"


@pytest.mark.parametrize("extra", sorted(set(_EXTRAS) - {"all", "test"}))
def test_all_installs_every_extra(extra: str) -> None:
    assert set(_EXTRAS[extra]) <= set(_EXTRAS["all"]), (
        f"[all] lacks {sorted(set(_EXTRAS[extra]) - set(_EXTRAS['all']))} of [{extra}]"
    )


def test_a_missing_module_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.delitem(sys.modules, "skimage.data", raising=False)
    with pytest.raises(MissingDependencyError) as info:
        _optional.require("skimage.data", "scikit-image")
    assert "pip install scikit-image" in str(info.value)
    assert "langchain-image-embeddings[samples]" in str(info.value)


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("open_clip:ViT-B-32", "open-clip"),
        ("timm:efficientnet_lite0", "timm"),
        ("torchvision:resnet18", "torchvision"),
        ("local:some/folder", "torch"),
    ],
)
def test_without_torch_the_error_names_the_backends_extra(
    monkeypatch: pytest.MonkeyPatch, model: str, extra: str
) -> None:
    import sys

    from langchain_image_embeddings import ImageEmbeddings

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError) as info:
        ImageEmbeddings(model, device="cpu").embed_query("a cat")
    assert f"pip install 'langchain-image-embeddings[{extra}]'" in str(info.value)
    assert repr(model) in str(info.value)
