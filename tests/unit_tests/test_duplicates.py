"""Near-duplicate groups (:func:`find_duplicates`) and ``imgemb duplicates``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.duplicates import find_duplicates
from langchain_image_embeddings.vectorstores import FAISSImageStore


def _store(tmp_path: Path, rows: dict[str, list[float]]) -> FAISSImageStore:
    store = FAISSImageStore(DeterministicFakeEmbedding(size=3), tmp_path / "index")
    docs = [Document(page_content=i, metadata={"source": f"/img/{i}.jpg"}) for i in rows]
    store.upsert_vectors(list(rows), np.asarray(list(rows.values()), np.float32), docs)
    return store


def test_chains_join_into_one_group_and_blocks_agree(tmp_path: Path) -> None:
    # a~b and b~c above the threshold, a~c below it: one group by union-find.
    a, b, c = [1.0, 0.0, 0.0], [0.9, 0.436, 0.0], [0.62, 0.785, 0.0]
    store = _store(tmp_path, {"a": a, "b": b, "c": c, "far": [0.0, 0.0, 1.0]})
    groups = find_duplicates(store, 0.94)
    assert [sorted(m.id for m in g.members) for g in groups] == [["a", "b", "c"]]
    assert 0.94 <= groups[0].min_score <= groups[0].max_score <= 1.0
    for block in (1, 2, 3):
        again = find_duplicates(store, 0.94, block_size=block)
        assert [g.to_dict() for g in again] == [g.to_dict() for g in groups]
    assert find_duplicates(store, 0.999) == []
    with pytest.raises(ValueError):
        find_duplicates(store, 0.0)


def test_real_photos_group_with_their_copies(
    lite0_embeddings: Any, photos_dir: Path, tmp_path_factory: Any
) -> None:
    from tests.serve_helpers import photo_store

    store, _ = photo_store(lite0_embeddings, photos_dir, tmp_path_factory.mktemp("lite0"))
    groups = find_duplicates(store)
    assert len(groups) == 8
    for group in groups:
        stems = {Path(m.source).name.split("-")[0].split(".")[0] for m in group.members}
        assert len(stems) == 1 and len(group) == 5


def test_cli_duplicates(
    lite0_embeddings: Any,
    photos_dir: Path,
    tmp_path_factory: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.serve_helpers import photo_store

    store, _ = photo_store(lite0_embeddings, photos_dir, tmp_path_factory.mktemp("lite0"))
    spec = f"faiss:{store.path}"
    assert main(["duplicates", "--store", spec, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 40 and len(report["groups"]) == 8
    assert all(g["size"] == 5 for g in report["groups"])
    assert main(["duplicates", "--store", spec, "--threshold", "0.95"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("8 group(s) of near-duplicates at a score >= 0.95 among 40 images")
    assert "chelsea-crop.jpg" in out
    assert main(["duplicates", "--store", spec, "--threshold", "2"]) == 2
    missing = tmp_path_factory.mktemp("empty") / "nowhere"
    assert main(["duplicates", "--store", f"faiss:{missing}"]) == 5
