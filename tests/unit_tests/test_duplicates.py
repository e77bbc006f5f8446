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
    groups = find_duplicates(store, 0.94, method="single")
    assert [sorted(m.id for m in g.members) for g in groups] == [["a", "b", "c"]]
    # min_score is the least similar pair (a~c, below the threshold: a chain)
    assert groups[0].min_score < 0.94 <= groups[0].max_score <= 1.0
    for block in (1, 2, 3):
        again = find_duplicates(store, 0.94, method="single", block_size=block)
        assert [g.to_dict() for g in again] == [g.to_dict() for g in groups]
    assert find_duplicates(store, 0.999) == []
    with pytest.raises(ValueError):
        find_duplicates(store, 0.0)


def test_complete_linkage_does_not_chain(tmp_path: Path) -> None:
    """The chain a~b~c (a~c below the threshold): complete linkage keeps the strongest pair
    a~b and leaves c out, where single link joins all three."""
    a, b, c = [1.0, 0.0, 0.0], [0.9, 0.436, 0.0], [0.62, 0.785, 0.0]
    store = _store(tmp_path, {"a": a, "b": b, "c": c, "far": [0.0, 0.0, 1.0]})
    groups = find_duplicates(store, 0.94, method="complete")
    assert [sorted(m.id for m in g.members) for g in groups] == [["a", "b"]]
    assert groups[0].min_score >= 0.94
    for block in (1, 2, 3):
        again = find_duplicates(store, 0.94, method="complete", block_size=block)
        assert [g.to_dict() for g in again] == [g.to_dict() for g in groups]
    with pytest.raises(ValueError, match="method"):
        find_duplicates(store, 0.9, method="average")


def test_centroid_grouping_cuts_a_long_chain(tmp_path: Path) -> None:
    """Twelve vectors 9 degrees apart (each pair of neighbours at 0.994): single link makes
    one chain of 12 spanning 99 degrees; centroid grouping cuts it into tight groups."""
    import math

    rows = {
        f"c{i:02d}": [math.cos(math.radians(9 * i)), math.sin(math.radians(9 * i)), 0.0]
        for i in range(12)
    }
    store = _store(tmp_path, rows)
    assert [len(g) for g in find_duplicates(store, 0.99, method="single")] == [12]
    groups = find_duplicates(store, 0.99)  # centroid is the default
    assert len(groups) >= 3 and all(len(g) <= 5 for g in groups)
    # every member is within the threshold of its group's mean direction
    for group in groups:
        vectors = np.asarray([rows[m.id] for m in group.members])
        mean = vectors.sum(axis=0) / np.linalg.norm(vectors.sum(axis=0))
        assert ((1 + vectors @ mean) / 2 >= 0.99 - 1e-6).all()


def test_group_size_cap_splits_a_tight_cluster(tmp_path: Path) -> None:
    rows = {f"r{i}": [1.0, 0.001 * i, 0.0] for i in range(7)}
    store = _store(tmp_path, rows)
    assert [len(g) for g in find_duplicates(store, 0.9)] == [7]
    for method in ("centroid", "complete"):
        capped = find_duplicates(store, 0.9, method=method, max_group_size=3)
        assert sorted(len(g) for g in capped) == [3, 3], method
    with pytest.raises(ValueError, match="max_group_size"):
        find_duplicates(store, 0.9, max_group_size=1)


def test_keeper_is_the_largest_then_the_biggest_file(tmp_path: Path) -> None:
    from langchain_image_embeddings.duplicates import removal_plan

    store = FAISSImageStore(DeterministicFakeEmbedding(size=3), tmp_path / "index")
    meta = {
        "small": {"source": "/img/small.jpg", "width": 100, "height": 100, "bytes": 9000},
        "big": {"source": "/img/big.jpg", "width": 400, "height": 300, "bytes": 1000},
        "big-file": {"source": "/img/big-file.png", "width": 400, "height": 300, "bytes": 5000},
    }
    docs = [Document(page_content=m["source"], metadata=m) for m in meta.values()]
    vectors = np.asarray([[1.0, 0.0, 0.0], [1.0, 0.01, 0.0], [1.0, 0.02, 0.0]], np.float32)
    store.upsert_vectors(list(meta), vectors, docs)
    (group,) = find_duplicates(store, 0.9)
    assert group.keeper.id == "big-file" and group.to_dict()["keeper"] == "big-file"
    plan = removal_plan([group])
    assert sorted(row["id"] for row in plan) == ["big", "small"]
    assert {row["keeper_id"] for row in plan} == {"big-file"}
    assert plan[0]["group"] == 1 and {"source", "width", "height", "bytes"} <= set(plan[0])
    # a choice overrides the suggestion; removing every member still keeps the keeper
    assert sorted(r["id"] for r in removal_plan([group], {"small": True, "big-file": False})) == [
        "big",
        "big-file",
    ]
    assert sorted(r["id"] for r in removal_plan([group], dict.fromkeys(meta, False))) == [
        "big",
        "small",
    ]


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
    assert main(["duplicates", "--store", spec, "--keep", "largest", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["keep"] == "largest" and len(plan["remove"]) == 8 * 4
    keepers = {g["keeper"] for g in plan["groups"]}
    assert len(keepers) == 8 and not keepers & {row["id"] for row in plan["remove"]}
    # the keeper of each group has the most pixels of its group
    for group in plan["groups"]:
        pixels = {
            m["id"]: m["metadata"]["width"] * m["metadata"]["height"] for m in group["members"]
        }
        assert pixels[group["keeper"]] == max(pixels.values())
    assert main(["duplicates", "--store", spec, "--keep", "largest"]) == 0
    assert capsys.readouterr().out.count("remove ") == 32
    assert main(["duplicates", "--store", spec, "--threshold", "2"]) == 2
    missing = tmp_path_factory.mktemp("empty") / "nowhere"
    assert main(["duplicates", "--store", f"faiss:{missing}"]) == 5
