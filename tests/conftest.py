"""Shared fixtures: offline models (real EfficientNet-Lite0 weights, a tiny random CLIP) and
real photos from scikit-image. Nothing here touches the network."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
