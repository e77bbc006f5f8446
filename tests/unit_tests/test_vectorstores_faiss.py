"""FAISS image store: pickle-free atomic persistence, reopen, model checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.vectorstores import FAISSImageStore, open_store
from tests.unit_tests.store_helpers import write_folder


@pytest.fixture
def saved(tiny_clip_embeddings: Any, tmp_path: Path) -> tuple[FAISSImageStore, Path]:
    paths = write_folder(tmp_path / "imgs", 5)
    store = FAISSImageStore.from_images(paths, tiny_clip_embeddings, tmp_path / "index")
    return store, tmp_path / "index"


def test_save_and_reopen_gives_the_same_results(
    saved: tuple[FAISSImageStore, Path], tiny_clip_embeddings: Any
) -> None:
    store, folder = saved
    files = sorted(p.name for p in folder.iterdir())
    assert "manifest.json" in files and len(files) == 3
    assert any(f.endswith(".npy") for f in files) and any(f.endswith(".json") for f in files)
    assert not any(f.endswith((".pkl", ".faiss")) for f in files)  # no pickle anywhere

    reopened = FAISSImageStore.load(folder, tiny_clip_embeddings)
    assert len(reopened) == len(store) == 5
    assert reopened.records() == store.records()
    query = store.embeddings.embed_query("anything")
    before = [
        (d.id, round(s, 6)) for d, s in store.similarity_search_with_score_by_vector(query, 5)
    ]
    after = [
        (d.id, round(s, 6)) for d, s in reopened.similarity_search_with_score_by_vector(query, 5)
    ]
    assert before == after
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["count"] == 5 and manifest["model"]["model"] == tiny_clip_embeddings.model_id
    vectors = np.load(folder / manifest["vectors"]["file"], allow_pickle=False)
    assert vectors.shape == (5, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_resave_replaces_data_files(saved: tuple[FAISSImageStore, Path]) -> None:
    store, folder = saved
    store.delete([next(iter(store.records()))])
    store.save()
    assert len(list(folder.iterdir())) == 3  # old data files removed after the manifest switch
    assert json.loads((folder / "manifest.json").read_text())["count"] == 4
    assert len(FAISSImageStore.load(folder, store.embeddings)) == 4


def test_other_model_is_refused(saved: tuple[FAISSImageStore, Path], lite0_embeddings: Any) -> None:
    _, folder = saved
    with pytest.raises(ModelMismatchError, match=r"lie-tiny-clip.*timm:efficientnet_lite0"):
        FAISSImageStore.load(folder, lite0_embeddings)


def test_corrupt_or_torn_store_is_refused_at_open(
    saved: tuple[FAISSImageStore, Path], tiny_clip_embeddings: Any
) -> None:
    _, folder = saved
    manifest = json.loads((folder / "manifest.json").read_text())
    vec = folder / manifest["vectors"]["file"]
    data = bytearray(vec.read_bytes())
    data[-1] ^= 0xFF
    vec.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum"):
        FAISSImageStore.load(folder, tiny_clip_embeddings)
    vec.unlink()
    with pytest.raises(StoreError, match="missing"):
        FAISSImageStore.load(folder, tiny_clip_embeddings)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="manifest"):
        FAISSImageStore.load(folder, tiny_clip_embeddings)


def test_open_store_specs(tiny_clip_embeddings: Any, tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        open_store(f"faiss:{tmp_path / 'none'}", tiny_clip_embeddings, create=False)
    created = open_store(f"faiss:{tmp_path / 'new'}", tiny_clip_embeddings)
    assert isinstance(created, FAISSImageStore) and len(created) == 0
    with pytest.raises(StoreError):
        open_store(f"faiss:{tmp_path / 'none'}", None)  # nothing to open, no model to create
    with pytest.raises(ValueError):
        open_store("redis://x", tiny_clip_embeddings)


def test_in_memory_store_needs_a_path_to_save(tiny_clip_embeddings: Any) -> None:
    store = FAISSImageStore(tiny_clip_embeddings)
    store.persist()  # no folder: nothing to do
    with pytest.raises(StoreError):
        store.save()
