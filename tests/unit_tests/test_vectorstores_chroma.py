"""Chroma image store (embedded): cosine space, model record, batching, specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.vectorstores import (
    ChromaImageStore,
    open_store,
    parse_store_spec,
    store_info,
)
from tests.unit_tests.store_helpers import write_folder


def test_reopen_with_recorded_model_and_refuse_another(
    tiny_clip_embeddings: Any, lite0_embeddings: Any, tmp_path: Path
) -> None:
    store = ChromaImageStore.persistent(
        tmp_path / "db", tiny_clip_embeddings, collection_name="pics"
    )
    store.add_images(write_folder(tmp_path / "imgs", 3))
    assert store.collection.configuration["hnsw"]["space"] == "cosine"
    reopened = ChromaImageStore.persistent(
        tmp_path / "db", tiny_clip_embeddings, collection_name="pics"
    )
    assert len(reopened) == 3 and reopened.records() == store.records()
    with pytest.raises(ModelMismatchError):
        ChromaImageStore.persistent(tmp_path / "db", lite0_embeddings, collection_name="pics")
    info = store_info(f"chroma:{tmp_path / 'db'}#pics")
    assert info["count"] == 3 and info["model"] == tiny_clip_embeddings.model_id
    assert info["dim"] == 32 and info["metric"] == "cosine"
    with pytest.raises(StoreError):
        store_info(f"chroma:{tmp_path / 'db'}#absent")
    with pytest.raises(StoreError):
        open_store(f"chroma:{tmp_path / 'nothing-here'}", None, create=False)


def test_writes_are_split_under_the_client_batch_limit(
    tiny_clip_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChromaImageStore.persistent(tmp_path / "db", tiny_clip_embeddings)
    calls: list[int] = []
    original = store.collection.upsert

    def spy(**kwargs: Any) -> Any:
        calls.append(len(kwargs["ids"]))
        return original(**kwargs)

    monkeypatch.setattr(store.collection, "upsert", spy)
    monkeypatch.setattr(store.client, "get_max_batch_size", lambda: 2)
    result = store.add_images(write_folder(tmp_path / "imgs", 5))
    assert len(result.added) == 5 and len(store) == 5
    assert calls == [2, 2, 1]


def test_parse_store_spec() -> None:
    spec = parse_store_spec("chroma+http://127.0.0.1:8123/photos")
    assert (spec.kind, spec.host, spec.port, spec.collection) == (
        "chroma+http",
        "127.0.0.1",
        8123,
        "photos",
    )
    spec = parse_store_spec("chroma:/data/db#pics")
    assert (spec.kind, spec.path, spec.collection) == ("chroma", "/data/db", "pics")
    assert parse_store_spec("faiss:idx").path == "idx"
    for bad in ("faiss", "chroma+http://host/coll", "milvus:x"):
        with pytest.raises(ValueError):
            parse_store_spec(bad)


def test_unreachable_server_is_a_store_error(tiny_clip_embeddings: Any) -> None:
    with pytest.raises(StoreError, match="cannot reach"):
        ChromaImageStore.http("127.0.0.1", 9, tiny_clip_embeddings)


def test_opening_without_a_model_needs_a_recorded_image_model(tmp_path: Path) -> None:
    """A collection written with a text model records no image model to reopen it with; a
    folder with no collection has nothing to open: both say what to pass."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    with pytest.raises(StoreError, match="no Chroma collection 'images': give a model"):
        ChromaImageStore.persistent(tmp_path / "empty")
    texts = ChromaImageStore.persistent(tmp_path / "texts", DeterministicFakeEmbedding(size=8))
    texts.add_texts(["a cat", "a dog"])
    texts.close()
    with pytest.raises(StoreError, match=r"records no image model .*: pass the embeddings"):
        ChromaImageStore.persistent(tmp_path / "texts")
