"""``ImageDirectoryLoader`` output is content-keyed for LangChain's ``index()``: ``touch`` and
moving the project re-embed nothing (``mtime`` and the absolute ``source`` made them
re-embed: 1 added, 1 deleted per touched file, everything after a move)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from langchain_core.indexing import InMemoryRecordManager, index

from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.store_helpers import EncoderSpy, write_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_touch_and_a_moved_project_reembed_nothing(
    tiny_clip_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch)
    project = tmp_path / "a"
    paths = write_folder(project / "photos", 3)
    monkeypatch.chdir(project)
    store = FAISSImageStore(tiny_clip_embeddings)
    manager = InMemoryRecordManager(namespace="photos")
    manager.create_schema()

    def run() -> dict[str, Any]:
        docs = ImageDirectoryLoader("photos").load()
        return dict(
            index(
                docs,
                manager,
                store,
                cleanup="incremental",
                source_id_key="source",
                key_encoder="sha256",
            )
        )

    first = run()
    assert first["num_added"] == 3 and spy.take() == 3
    assert sorted(store.records()[i]["source"] for i in store.records()) == [
        f"photos/img0{n}.png" for n in range(3)
    ]

    stat = paths[0].stat()
    os.utime(paths[0], (stat.st_atime + 100, stat.st_mtime + 100))  # touch
    touched = run()
    assert (touched["num_added"], touched["num_deleted"], touched["num_skipped"]) == (0, 0, 3)

    shutil.move(project, tmp_path / "b")  # the project moves, the working directory with it
    monkeypatch.chdir(tmp_path / "b")
    moved = run()
    assert (moved["num_added"], moved["num_deleted"], moved["num_skipped"]) == (0, 0, 3)
    assert spy.take() == 0  # nothing re-embedded
    # the stored paths still open from the new place
    (hit,) = store.similarity_search_by_image("photos/img01.png", k=1)
    assert hit.page_content == "photos/img01.png"


def test_absolute_paths_and_mtime_on_request(tmp_path: Path) -> None:
    write_folder(tmp_path / "photos", 1)
    (doc,) = ImageDirectoryLoader(tmp_path / "photos", paths="absolute", include_mtime=True).load()
    assert Path(doc.page_content).is_absolute() and "mtime" in doc.metadata
    with pytest.raises(ValueError, match="paths"):
        ImageDirectoryLoader(tmp_path, paths="posix")  # type: ignore[arg-type]
