"""Issue 12, FAISS at scale: approximate indexes tuned to a recall target, deletes for every
index kind, incremental saves (segments, deletions, compaction), version 1 stores."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores import FAISSImageStore, store_info
from langchain_image_embeddings.vectorstores.faiss import _index as ann
from tests.unit_tests import store_crash_writer as writer

DIM = writer.DIM  # 64


def clustered(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """Gaussian clusters around 100 random unit centres, normalised (as benchmarks/ann.py)."""
    centres = np.random.default_rng(99).standard_normal((100, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, 100, n)] + rng.normal(0, 0.08, (n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled(kind: str, vectors: np.ndarray, path: Path | None = None) -> FAISSImageStore:
    store = FAISSImageStore(writer.PrecomputedEmbeddings(), path, index=kind)
    ids = [f"v{i}" for i in range(len(vectors))]
    store.upsert_vectors(
        ids, vectors, [Document(page_content=i, metadata={"n": n}) for n, i in enumerate(ids)]
    )
    return store


def recall(store: FAISSImageStore, vectors: np.ndarray, queries: np.ndarray) -> float:
    truth = ann.exact_topk(vectors, queries, 10)
    hits = 0
    for q, true in zip(queries, truth, strict=True):
        found = {
            int(str(d.id)[1:])
            for d, _ in store.similarity_search_with_score_by_vector(q.tolist(), 10)
        }
        hits += len(found & set(true.tolist()))
    return hits / truth.size


@pytest.mark.parametrize("kind", ["hnsw", "ivf-pq"])
def test_recall_at_the_recorded_parameters_and_reopen_without_retraining(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors, queries = clustered(5000, seed=1), clustered(100, seed=2)  # queries held out
    store = filled(kind, vectors, tmp_path / "s")
    store.save()
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    entry = manifest["index"]
    assert entry["requested"] == entry["kind"] == kind and entry["file"].endswith(".faiss")
    assert entry["recall"] >= 0.95 and entry["recall_k"] == 10 and entry["params"]
    assert recall(store, vectors, queries) >= 0.95
    info = store_info(f"faiss:{tmp_path / 's'}")
    assert info["index"] == kind and info["recall_at_10"] >= 0.95 and info["index_memory_bytes"] > 0

    def no_training(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("reopening must not retrain the index")

    monkeypatch.setattr(ann, "build", no_training)
    reopened = FAISSImageStore.load(tmp_path / "s", writer.PrecomputedEmbeddings())
    assert reopened.index_info["params"] == entry["params"] and reopened.backend._ann is not None
    assert recall(reopened, vectors, queries) >= 0.95


@pytest.mark.parametrize("folder", ["store", "störe-画像"])
def test_the_index_file_is_read_and_written_by_path_where_faiss_can_open_it(
    folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    vectors, queries = clustered(3000, seed=4), clustered(50, seed=5)
    store = filled("hnsw", vectors, tmp_path / folder)
    store.save()
    expected = [store.similarity_search_with_score_by_vector(q.tolist(), 5) for q in queries]
    store.close()
    through_memory: list[str] = []
    real_deserialize = faiss.deserialize_index

    def counting_deserialize(data: Any) -> Any:
        through_memory.append("read")
        return real_deserialize(data)

    monkeypatch.setattr(faiss, "deserialize_index", counting_deserialize)
    reopened = FAISSImageStore.load(tmp_path / folder, writer.PrecomputedEmbeddings())
    found = [reopened.similarity_search_with_score_by_vector(q.tolist(), 5) for q in queries]
    assert [[d.id for d, _ in r] for r in found] == [[d.id for d, _ in r] for r in expected]
    # An ASCII path is opened by faiss itself (the index held once in memory); any other
    # goes through bytes (faiss's file I/O takes a narrow C string): the same file either way.
    assert through_memory == ([] if folder.isascii() else ["read"])
    entry = json.loads((tmp_path / folder / "manifest.json").read_text())["index"]
    index_file = tmp_path / folder / entry["file"]
    assert entry["memory_bytes"] == index_file.stat().st_size
    assert faiss.serialize_index(real_deserialize(np.fromfile(index_file, np.uint8))).nbytes == (
        index_file.stat().st_size
    )


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-pq", "IVF32,Flat"])
def test_deletes_replacements_and_filters_for_every_index_kind(kind: str) -> None:
    vectors = clustered(2000, seed=3)
    store = filled(kind, vectors)
    store.build_index()
    assert (store.backend._ann is None) == (kind == "flat")
    gone = [f"v{i}" for i in range(0, 2000, 10)]
    store.delete(gone)
    new = clustered(50, seed=4)
    replaced = [f"v{i}" for i in range(1, 100, 2)]
    store.upsert_vectors(replaced, new, [Document(page_content=i) for i in replaced])
    assert len(store) == 1800 and np.allclose(store.backend.vectors(replaced), new, atol=1e-6)
    for q in vectors[::40]:
        ids = {d.id for d, _ in store.similarity_search_with_score_by_vector(q.tolist(), 10)}
        assert not ids & set(gone)
    found = sum(
        f"v{1 + 2 * j}"
        in {d.id for d, _ in store.similarity_search_with_score_by_vector(new[j].tolist(), 10)}
        for j in range(50)
    )
    assert found >= 45  # approximate: near-duplicates found, never demanded at rank 1
    hits = store.similarity_search_with_score_by_vector(
        vectors[2].tolist(), 3, filter={"n": {"$in": [2, 4, 6, 10]}}
    )
    assert hits[0][0].id == "v2" and len(hits) == 3  # filtered: exact, v10 gone


def test_incremental_saves_write_only_new_rows_then_compact(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    store = filled("flat", clustered(3000, seed=5), folder)
    store.full_save_below_bytes = 0  # treat it as big
    store.save()
    base = json.loads((folder / "manifest.json").read_text())
    store.upsert_vectors(
        ["a", "b"], clustered(2, seed=6), [Document(page_content=i) for i in ("a", "b")]
    )
    store.delete(["v0"])
    store.update_metadata(["v1"], [{"n": 1, "tag": "changed"}])
    store.save()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == 3 and manifest["vectors"] == base["vectors"]  # base untouched
    (segment,) = manifest["segments"]
    assert segment["rows"] == 3  # a, b and v1 re-added with its new metadata
    assert np.load(folder / segment["vectors"]["file"]).shape == (3, DIM)
    assert manifest["deletions"]["count"] == 2 and manifest["count"] == 3001
    reopened = FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    assert reopened.records() == store.records() and len(reopened) == 3001
    assert reopened.get_by_ids(["v1"])[0].metadata["tag"] == "changed"
    assert np.allclose(reopened.backend.vectors(["a", "v5"]), store.backend.vectors(["a", "v5"]))
    # a torn segment is refused
    seg = folder / segment["vectors"]["file"]
    data = seg.read_bytes()
    seg.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(StoreError, match="checksum"):
        FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    seg.write_bytes(data)
    # deleting over a fifth of the rows compacts: one base segment, no deletions
    store.delete([f"v{i}" for i in range(2, 1000)])
    store.save()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["segments"] == [] and manifest["deletions"] is None
    assert manifest["rows"] == manifest["count"] == 2003
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert len(names) == 3  # older segments and deletions removed after the switch
    assert len(FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())) == 2003


def test_version_1_store_opens_and_is_upgraded_on_save(tmp_path: Path) -> None:
    from langchain_image_embeddings._atomic import sha256_file
    from langchain_image_embeddings.vectorstores._records import model_record

    folder = tmp_path / "v1"
    folder.mkdir()
    vectors = clustered(4, seed=7)
    np.save(folder / "vectors-00000003-abcd.npy", vectors)
    docs = [{"id": f"v{i}", "page_content": f"v{i}", "metadata": {"n": i}} for i in range(4)]
    (folder / "documents-00000003-abcd.json").write_text(json.dumps(docs))
    embeddings: Any = writer.PrecomputedEmbeddings()
    manifest = {  # exactly what version 1 wrote
        "format": "langchain-image-embeddings/faiss",
        "version": 1,
        "generation": 3,
        "model": {**model_record(embeddings), "dim": DIM},
        "count": 4,
        "dim": DIM,
        "metric": "inner_product",
        "vectors": {
            "file": "vectors-00000003-abcd.npy",
            "sha256": sha256_file(folder / "vectors-00000003-abcd.npy"),
        },
        "documents": {
            "file": "documents-00000003-abcd.json",
            "sha256": sha256_file(folder / "documents-00000003-abcd.json"),
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert store_info(f"faiss:{folder}")["index"] == "flat"
    store = FAISSImageStore.load(folder, embeddings)
    assert (
        len(store) == 4
        and store.similarity_search_with_score_by_vector(vectors[2].tolist(), 1)[0][0].id == "v2"
    )
    store.save()
    upgraded = json.loads((folder / "manifest.json").read_text())
    assert upgraded["version"] == 3 and upgraded["generation"] == 4
    assert FAISSImageStore.load(folder, embeddings).records() == store.records()


def test_auto_picks_by_count_and_memory_budget() -> None:
    assert ann.resolve("auto", 50_000, 512) == "flat"
    assert ann.resolve("auto", 1_000_000, 512, memory_budget=8 << 30) == "hnsw"
    assert ann.resolve("auto", 10_000_000, 512, memory_budget=8 << 30) == "ivf-pq"
    assert ann.resolve("hnsw", 10, 512) == "hnsw"
    assert "OPQ" in ann.factory_string("ivf-pq", 1_000_000, 512)
    with pytest.raises(ValueError, match="index_factory"):
        FAISSImageStore(writer.PrecomputedEmbeddings(), index="no-such-index")


def test_cli_index_with_faiss_index_auto(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from langchain_image_embeddings import cli

    args = cli.build_parser().parse_args(
        ["index", str(tmp_path), "--store", f"faiss:{tmp_path / 's'}", "--faiss-index", "auto"]
    )
    assert args.faiss_index == "auto"
    from langchain_image_embeddings.vectorstores import open_store

    embeddings: Any = writer.PrecomputedEmbeddings()
    opened: Any = open_store(f"faiss:{tmp_path / 'o'}", embeddings, faiss_index="hnsw")
    assert opened.index_kind == "hnsw"
    filled("auto", clustered(10, seed=8), tmp_path / "s").save()
    assert cli.main(["info", "--store", f"faiss:{tmp_path / 's'}", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["index_requested"] == "auto" and info["index"] == "flat"
    assert info["recall_at_10"] == 1.0 and info["index_memory_bytes"] == 10 * DIM * 4


def test_incremental_save_keeps_the_index_file_and_reopen_adds_new_rows(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    vectors = clustered(2000, seed=9)
    store = filled("hnsw", vectors, folder)
    store.full_save_below_bytes = 0
    store.save()
    first = json.loads((folder / "manifest.json").read_text())["index"]
    new = clustered(20, seed=10)
    ids = [f"n{i}" for i in range(20)]
    store.upsert_vectors(ids, new, [Document(page_content=i) for i in ids])
    store.save()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["index"]["file"] == first["file"] and manifest["index"]["rows"] == 2000
    assert [s["rows"] for s in manifest["segments"]] == [20]
    reopened = FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    assert reopened.backend._ann.ntotal == 2020 and len(reopened) == 2020
    found = sum(
        ids[j]
        in {d.id for d, _ in reopened.similarity_search_with_score_by_vector(new[j].tolist(), 10)}
        for j in range(20)
    )
    assert found >= 18


def test_saved_vectors_are_memory_mapped_and_only_new_rows_held_in_memory(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "s"
    vectors = clustered(2000, seed=11)
    store = filled("ivf-pq", vectors, folder)
    store.full_save_below_bytes = 0
    assert store.vectors_in_memory == 2000  # nothing saved yet
    store.save()
    assert store.vectors_in_memory == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert store.backend._rows.mapped_files == [manifest["vectors"]["file"]]
    reopened = FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    assert reopened.vectors_in_memory == 0
    assert all(isinstance(part, np.memmap) for part in reopened.backend._rows._parts)
    queries = clustered(50, seed=12)
    assert recall(reopened, vectors, queries) >= 0.95  # rescored from the mapped rows
    hit, score = reopened.similarity_search_with_score_by_vector(vectors[7].tolist(), 1)[0]
    assert hit.id == "v7" and score > 0.9999
    assert np.allclose(reopened.backend.vectors(["v3", "v1999"]), vectors[[3, 1999]], atol=1e-6)
    # new rows stay in memory until saved, then live in their own mapped segment
    new = clustered(30, seed=13)
    ids = [f"n{i}" for i in range(30)]
    reopened.upsert_vectors(ids, new, [Document(page_content=i) for i in ids])
    reopened.full_save_below_bytes = 0
    assert reopened.vectors_in_memory == 30
    reopened.save()
    segment = json.loads((folder / "manifest.json").read_text())["segments"][0]
    assert reopened.vectors_in_memory == 0
    assert reopened.backend._rows.mapped_files[-1] == segment["vectors"]["file"]
    assert reopened.similarity_search_with_score_by_vector(new[4].tolist(), 1)[0][0].id == "n4"


def test_compaction_streams_into_a_new_base_while_a_reader_maps_the_old_files(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "s"
    vectors = clustered(1500, seed=14)
    writer_store = filled("flat", vectors, folder)
    writer_store.full_save_below_bytes = 0
    writer_store.save()
    reader = FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    old_files = set(reader.backend._rows.mapped_files)
    writer_store.delete([f"v{i}" for i in range(0, 1500, 2)])  # half: compaction is due
    writer_store.save()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["segments"] == [] and manifest["deletions"] is None
    assert manifest["rows"] == manifest["count"] == 750
    assert not old_files & {p.name for p in folder.iterdir()}  # deleted after the switch
    assert writer_store.backend._rows.mapped_files == [manifest["vectors"]["file"]]
    assert writer_store.vectors_in_memory == 0
    kept = np.load(folder / manifest["vectors"]["file"])
    assert np.allclose(kept, vectors[1::2], atol=1e-6)  # live rows only, in order
    assert (
        writer_store.similarity_search_with_score_by_vector(vectors[9].tolist(), 1)[0][0].id == "v9"
    )
    # the reader's maps still hold the old generation's rows (POSIX keeps unlinked data)
    assert reader.similarity_search_with_score_by_vector(vectors[8].tolist(), 1)[0][0].id == "v8"
    assert len(FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())) == 750


def test_recall_target_and_memory_budget_are_recorded_and_drive_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ann, "AUTO_FLAT_BELOW", 1000)  # auto leaves flat at 1,000 vectors
    vectors = clustered(2000, seed=15)
    folder = tmp_path / "s"
    store = FAISSImageStore(
        writer.PrecomputedEmbeddings(),
        folder,
        index="auto",
        recall_target=0.9,
        memory_budget="100KB",  # far below what HNSW needs for 2,000 x 64
    )
    ids = [f"v{i}" for i in range(2000)]
    store.upsert_vectors(ids, vectors, [Document(page_content=i) for i in ids])
    store.save()
    info = store_info(f"faiss:{folder}")
    assert info["index"] == "ivf-pq" and info["index_requested"] == "auto"
    assert info["recall_target"] == 0.9 and info["memory_budget"] == 100_000
    assert info["recall_at_10"] >= 0.9 and info["vectors_bytes"] == 2000 * DIM * 4
    # reopened without the settings: the recorded ones are kept (no rebuild at save)
    kept = FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    assert (kept.recall_target, kept.memory_budget) == (0.9, 100_000)
    assert kept.index_info["kind"] == "ivf-pq" and not kept.backend.index_outdated()
    # a larger budget makes auto pick HNSW at the next save; a new target is re-tuned
    bigger = FAISSImageStore.load(
        folder, writer.PrecomputedEmbeddings(), memory_budget="1GB", recall_target=0.99
    )
    assert bigger.index_info["recall_target"] == 0.99  # re-measured at open
    bigger.save()
    info = store_info(f"faiss:{folder}")
    assert info["index"] == "hnsw" and info["memory_budget"] == 10**9
    assert info["recall_target"] == 0.99 and info["recall_at_10"] >= 0.99
    with pytest.raises(ValueError, match="recall_target"):
        FAISSImageStore(writer.PrecomputedEmbeddings(), recall_target=1.5)
    with pytest.raises(ValueError, match="memory size"):
        FAISSImageStore(writer.PrecomputedEmbeddings(), memory_budget="lots")


def test_cli_recall_target_and_memory_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_image_embeddings import cli
    from langchain_image_embeddings.cli.index import open_for_write

    parser = cli.build_parser()
    spec = f"faiss:{tmp_path / 's'}"
    options = ["--recall-target", "0.97", "--memory-budget", "2GB", "--faiss-index", "auto"]
    args = parser.parse_args(["index", str(tmp_path), "--store", spec, *options])
    assert (args.recall_target, args.memory_budget) == (0.97, 2 * 10**9)
    for bad in (["--recall-target", "1.5"], ["--memory-budget", "lots"]):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["index", str(tmp_path), *bad])
        assert exit_info.value.code == 2
    assert "recall in (0, 1]" in capsys.readouterr().err
    import langchain_image_embeddings.embeddings as embeddings_module

    embeddings: Any = writer.PrecomputedEmbeddings()

    class CommandModel:  # what the command builds its model with, without loading one
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return embeddings

    monkeypatch.setattr(embeddings_module, "ImageEmbeddings", CommandModel)
    args.model = writer.MODEL_ID
    store: Any = open_for_write(args)  # the store `imgemb index` writes
    assert (store.index_kind, store.recall_target, store.memory_budget) == ("auto", 0.97, 2e9)
    ids = [f"v{i}" for i in range(5)]
    store.upsert_vectors(ids, clustered(5, seed=16), [Document(page_content=i) for i in ids])
    store.save()
    store.close()
    assert cli.main(["info", "--store", spec, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["recall_target"] == 0.97 and info["memory_budget"] == 2 * 10**9
    assert info["index"] == "flat" and info["index_requested"] == "auto"
    assert cli.main(["info", "--store", spec]) == 0
    assert "recall_target" in capsys.readouterr().out


def test_segment_reads_scattered_rows_and_runs_exactly_and_refuses_a_truncated_file(
    tmp_path: Path,
) -> None:
    from langchain_image_embeddings.vectorstores.faiss import _rows as faiss_rows

    data = clustered(200, seed=23)
    np.save(tmp_path / "rows.npy", data)
    segment = faiss_rows.Segment(tmp_path / "rows.npy", DIM)
    rng = np.random.default_rng(5)
    for wanted in (
        np.array([0]),
        np.array([199]),
        np.arange(200),  # one run: a single read
        np.array([0, 1, 2, 50, 51, 120, 198, 199]),  # runs at both ends
        np.unique(rng.integers(0, 200, 60)),
    ):
        assert np.array_equal(segment.read(wanted), data[wanted])
    assert segment.read(np.array([], dtype=np.int64)).shape == (0, DIM)
    # Cut half a row off the end behind the open segment (a file changed under the store):
    # the read of the last row comes back short and says so instead of returning garbage.
    size = (tmp_path / "rows.npy").stat().st_size
    os.truncate(tmp_path / "rows.npy", size - 2 * DIM)
    assert np.array_equal(segment.read(np.array([3, 198])), data[[3, 198]])
    with pytest.raises(StoreError, match="short read"):
        segment.read(np.array([3, 199]))
    segment.close()


def test_row_vectors_read_segments_and_pending_rows_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_image_embeddings.vectorstores.faiss import _rows as faiss_rows

    data = clustered(300, seed=17)
    np.save(tmp_path / "a.npy", data[:100])
    np.save(tmp_path / "b.npy", data[100:250])
    rows = faiss_rows.RowVectors(None)
    rows.add_part(faiss_rows.Segment(tmp_path / "a.npy", DIM))
    rows.add_part(faiss_rows.Segment(tmp_path / "b.npy", DIM))
    rows.append(data[250:])
    assert len(rows) == 300 and rows.pending_rows == 50
    assert rows.mapped_files == ["a.npy", "b.npy"]
    monkeypatch.setattr(faiss_rows, "EXACT_BLOCK_BYTES", 40 * 4 * DIM)  # blocks of 40 rows
    wanted = np.array([299, 5, 120, 5, 99, 100, 101, 260, 0])  # unsorted, repeated, runs
    reads: list[int] = []
    real_read = faiss_rows.Segment.read

    def counting_read(self: Any, local: np.ndarray) -> np.ndarray:
        reads.append(len(local))
        return real_read(self, local)

    monkeypatch.setattr(faiss_rows.Segment, "read", counting_read)
    assert np.array_equal(rows.take(wanted), data[wanted])
    assert reads == [3, 3]  # scattered rows are read from the files, each once
    assert np.array_equal(rows.slice(90, 260), data[90:260])
    dead = np.zeros(300, bool)
    dead[[7, 150, 280]] = True
    query = data[150]
    found, scores = rows.exact_search(query, 5, dead=dead)
    truth = np.argsort(-np.where(dead, -np.inf, data @ query), kind="stable")[:5]
    assert np.array_equal(found, truth) and np.allclose(scores, data[truth] @ query)
    subset = np.array([3, 150, 200, 290])
    found, _ = rows.exact_search(query, 2, dead=dead, subset=subset)
    assert set(found) <= {3, 200, 290} and len(found) == 2
    rows.close()
    assert len(rows) == 50 and rows.mapped_files == []  # closing leaves only unsaved rows
