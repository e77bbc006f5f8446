"""``imgemb serve``'s API over a collection on a real Chroma server (127.0.0.1)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from langchain_image_embeddings.sync import sync_directory
from langchain_image_embeddings.vectorstores import ChromaImageStore
from tests.unit_tests.test_serve_api import run_store_kind

pytestmark = pytest.mark.integration


def test_chroma_server_store(
    chroma_server: tuple[str, int], tiny_clip_embeddings: Any, photos_dir: Path, tmp_path: Path
) -> None:
    host, port = chroma_server
    folder = tmp_path / "photos"
    shutil.copytree(photos_dir, folder, ignore=shutil.ignore_patterns("copies"))
    name = f"serve{uuid.uuid4().hex[:10]}"
    store = ChromaImageStore.http(host, port, tiny_clip_embeddings, collection_name=name)
    sync_directory(store, folder)
    run_store_kind(store, folder)
