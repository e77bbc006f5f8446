"""Fixtures of the scale tests: the corpus, a tiny saved model, its reference vectors and a
local Ray (2 CPUs, started once per session, only by the tests that ask for it)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scale_tests.corpus import good_files, save_tiny_model, write_corpus


@pytest.fixture(scope="session")
def scale_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~200 small real-photo images, a duplicate and 4 unreadable files (read-only use)."""
    return write_corpus(tmp_path_factory.mktemp("scale-corpus"))


@pytest.fixture(scope="session")
def scale_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``local:DIR`` spec of a tiny random-weight ViT (same weights in every process)."""
    return save_tiny_model(tmp_path_factory.mktemp("scale-model"))


@pytest.fixture(scope="session")
def scale_embeddings(scale_model: str) -> Any:
    from langchain_image_embeddings import ImageEmbeddings

    return ImageEmbeddings(scale_model, device="cpu", batch_size=16)


@pytest.fixture(scope="session")
def reference_vectors(scale_corpus: Path, scale_embeddings: Any) -> dict[str, Any]:
    """``embed_images_array`` of every readable file in one process: ``{path: vector}``."""
    files = good_files(scale_corpus)
    vectors = scale_embeddings.embed_images_array(files)
    return dict(zip(files, vectors, strict=True))


@pytest.fixture(scope="session")
def local_ray() -> Iterator[str]:
    """A local Ray of 2 CPUs for the session; yields its address for other drivers."""
    import ray

    from langchain_image_embeddings.scale.ray_session import start_local_ray, stop_local_ray

    temp = tempfile.mkdtemp(prefix="imgemb-ray-")  # short: Ray's socket paths are limited
    start_local_ray(temp, num_cpus=2)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        stop_local_ray()
        shutil.rmtree(temp, ignore_errors=True)
