"""Incremental folder sync: exactly the new/changed images are embedded, deleted ones removed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langchain_image_embeddings.sync import sync_directory
from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from tests.unit_tests.store_helpers import EncoderSpy, write_folder, write_image


def _held(store: ImageVectorStore) -> dict[str, str]:
    """source -> sha256 of what the store holds."""
    return {m["source"]: m["sha256"] for m in store.records().values()}


def _on_disk(folder: Path) -> dict[str, str]:
    return {
        str(p.resolve()): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


@pytest.fixture(params=["faiss", "chroma"])
def reopen(
    request: pytest.FixtureRequest, tmp_path: Path, tiny_clip_embeddings: Any
) -> Callable[[], ImageVectorStore]:
    """Open the store afresh from disk each step (proves persistence between runs)."""

    def factory() -> ImageVectorStore:
        if request.param == "faiss":
            return FAISSImageStore.open(tmp_path / "faiss", tiny_clip_embeddings)
        return ChromaImageStore.persistent(tmp_path / "chroma", tiny_clip_embeddings)

    return factory


def test_incremental_sync(
    reopen: Callable[[], ImageVectorStore],
    tiny_clip_embeddings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch)
    folder = tmp_path / "photos"
    paths = write_folder(folder, 5)
    write_image(folder / "sub" / "nested.png", 40)

    # 1. first run: everything is embedded
    result = sync_directory(reopen(), folder)
    assert spy.take() == 6 and result.embedded == 6
    assert result.counts() == {
        "added": 6,
        "updated": 0,
        "removed": 0,
        "unchanged": 0,
        "duplicates": 0,
        "failed": 0,
        "embedded": 6,
    }
    assert _held(reopen()) == _on_disk(folder)

    # 2. unchanged re-run: nothing embedded, nothing changes
    result = sync_directory(reopen(), folder)
    assert spy.take() == 0
    assert result.counts() == {
        "added": 0,
        "updated": 0,
        "removed": 0,
        "unchanged": 6,
        "duplicates": 0,
        "failed": 0,
        "embedded": 0,
    }

    # 3. edit one, add one, delete one, touch one (same bytes, new mtime)
    write_image(paths[0], seed=77)
    write_image(folder / "new.png", seed=78)
    paths[1].unlink()
    paths[2].write_bytes(paths[2].read_bytes())
    result = sync_directory(reopen(), folder)
    assert spy.take() == 2  # exactly the edited and the new image
    assert result.updated == [str(paths[0].resolve())]
    assert result.added == [str((folder / "new.png").resolve())]
    assert result.removed == [str(paths[1].resolve())]
    assert len(result.unchanged) == 4 and not result.failed
    store = reopen()
    assert _held(store) == _on_disk(folder) and len(store) == 6

    # 4. a file that became unreadable is reported and keeps its last good vector
    old = _held(store)[str(paths[3].resolve())]
    paths[3].write_bytes(b"\x89PNG\r\n\x1a\n broken now")
    result = sync_directory(reopen(), folder)
    assert spy.take() == 0
    assert [Path(e.source).name for e in result.failed] == [paths[3].name]
    assert result.failed[0].code in {"corrupt", "unsupported_format"}
    assert _held(reopen())[str(paths[3].resolve())] == old

    # 5. and again unchanged: 0 embedded
    result = sync_directory(reopen(), folder)
    assert spy.take() == 0 and result.embedded == 0


def test_sync_only_touches_its_own_folder(tiny_clip_embeddings: Any, tmp_path: Path) -> None:
    store = FAISSImageStore(tiny_clip_embeddings)
    write_folder(tmp_path / "a", 2)
    write_folder(tmp_path / "b", 3, start=10)
    sync_directory(store, tmp_path / "a")
    sync_directory(store, tmp_path / "b")
    assert len(store) == 5
    for p in (tmp_path / "a").iterdir():
        p.unlink()
    result = sync_directory(store, tmp_path / "a")
    assert len(result.removed) == 2 and len(store) == 3
    kept = _held(store)
    assert all(s.startswith(str((tmp_path / "b").resolve())) for s in kept)


def test_keep_missing(tiny_clip_embeddings: Any, tmp_path: Path) -> None:
    store = FAISSImageStore(tiny_clip_embeddings)
    paths = write_folder(tmp_path / "a", 2)
    sync_directory(store, tmp_path / "a")
    paths[0].unlink()
    result = sync_directory(store, tmp_path / "a", delete_missing=False)
    assert result.removed == [] and len(store) == 2


def test_a_rerun_reads_the_whole_store_once(
    reopen: Callable[[], ImageVectorStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a server store every full listing is a scan of the collection: one per sync."""
    folder = tmp_path / "photos"
    write_folder(folder, 4)
    store = reopen()
    sync_directory(store, folder)
    (folder / "img00.png").unlink()  # a removal, so that the removal path runs too
    scans = 0
    original = type(store).records

    def counting(self: ImageVectorStore) -> dict[str, dict[str, Any]]:
        nonlocal scans
        scans += 1
        return original(self)

    monkeypatch.setattr(type(store), "records", counting)
    result = sync_directory(store, folder)
    assert len(result.removed) == 1 and result.embedded == 0
    assert scans == 1
