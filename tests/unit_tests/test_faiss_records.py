"""Issue 26, records off the heap: a FAISS store's saved documents live in their segments'
SQLite files and are read for results; format-2 stores (JSON documents) still open."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from langchain_image_embeddings._atomic import sha256_file
from langchain_image_embeddings.vectorstores import FAISSImageStore
from langchain_image_embeddings.vectorstores._records import model_record
from langchain_image_embeddings.vectorstores.faiss import _index as ann
from tests.unit_tests import store_crash_writer as writer

DIM = writer.DIM


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def meta(i: int) -> dict[str, Any]:
    return {"source": f"/photos/IMG_{i:04d}.jpg", "width": 640 + i % 3, "mtime": 1.5e9 + i}


def store_of(path: Path | None, vectors: np.ndarray, prefix: str = "v") -> FAISSImageStore:
    store = FAISSImageStore(writer.PrecomputedEmbeddings(), path)
    store.full_save_below_bytes = 0  # saves are incremental, as for a big store
    ids = [f"{prefix}{i}" for i in range(len(vectors))]
    docs = [
        Document(page_content=f"/photos/IMG_{i:04d}.jpg", metadata=meta(i)) for i in range(len(ids))
    ]
    store.upsert_vectors(ids, vectors, docs)
    return store


def test_saved_rows_hold_no_document_in_memory_and_are_read_from_their_files(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "s"
    vectors = unit(300, seed=1)
    store = store_of(folder, vectors)
    assert len(store.backend._docs) == 300  # unsaved: held in memory
    store.save()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == 3 and manifest["documents"]["file"].endswith(".sqlite")
    assert store.backend._docs == {}  # saved: read from the file from now on
    assert store.backend._saved_docs.files == [manifest["documents"]["file"]]

    reopened = FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    backend = reopened.backend
    assert backend._docs == {} and len(backend._saved_docs) == 300
    (doc,) = reopened.get_by_ids(["v7"])
    assert doc.page_content == "/photos/IMG_0007.jpg" and doc.metadata == meta(7)
    doc.metadata["width"] = 1  # a copy: the store is unchanged
    assert reopened.get_by_ids(["v7"])[0].metadata == meta(7)
    hit, score = reopened.similarity_search_with_score_by_vector(vectors[42].tolist(), 1)[0]
    assert hit.id == "v42" and hit.metadata == meta(42) and score > 0.9999
    assert reopened.records() == store.records() and len(reopened.records()) == 300
    assert reopened.records()["v9"] == meta(9)
    # a filter streams every row's metadata from the file and stays exact
    found = reopened.similarity_search_with_score_by_vector(
        vectors[5].tolist(), 100, filter={"width": 642}
    )
    assert {d.id for d, _ in found} == {f"v{i}" for i in range(300) if i % 3 == 2}
    assert backend._docs == {}  # reading results loaded nothing into memory


def test_new_and_changed_rows_are_held_until_saved_then_read_from_their_segment(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "s"
    store = store_of(folder, unit(200, seed=2))
    store.save()
    new = unit(5, seed=3)
    store.upsert_vectors(
        [f"n{i}" for i in range(5)], new, [Document(page_content=f"n{i}") for i in range(5)]
    )
    store.delete(["n4", "v0"])  # n4 never saved: a placeholder row keeps the segment aligned
    store.update_metadata(["v1"], [{"tag": "changed"}])
    assert set(store.backend._docs) == {"n0", "n1", "n2", "n3", "v1"}
    store.save()
    assert store.backend._docs == {}
    manifest = json.loads((folder / "manifest.json").read_text())
    (segment,) = manifest["segments"]
    assert segment["rows"] == 6 and segment["documents"]["file"].endswith(".sqlite")
    for opened in (store, FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())):
        assert len(opened) == 203 and opened.backend._docs == {}
        assert opened.get_by_ids(["v1"])[0].metadata == {"tag": "changed"}
        assert opened.get_by_ids(["v1"])[0].page_content == "/photos/IMG_0001.jpg"
        assert opened.get_by_ids(["v0", "n4"]) == []
        assert opened.get_by_ids(["n2"])[0].page_content == "n2"
        hit = opened.similarity_search_with_score_by_vector(new[3].tolist(), 1)[0][0]
        assert hit.id == "n3"
        assert opened.records()["v1"] == {"tag": "changed"} and "v0" not in opened.records()
    # compaction rewrites every live record into one new file, metadata changes included
    store.update_metadata(["v2"], [{"tag": "again"}])
    store.delete([f"v{i}" for i in range(3, 100)])
    store.save()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["segments"] == [] and manifest["count"] == 106
    assert store.backend._docs == {}
    reopened = FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    assert reopened.get_by_ids(["v2"])[0].metadata == {"tag": "again"}
    assert reopened.records() == store.records() and len(reopened) == 106


def test_a_reader_keeps_the_generation_it_opened_and_writes_nothing_into_the_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "s"
    vectors = unit(400, seed=4)
    store = store_of(folder, vectors)
    store.save()
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    reader = FAISSImageStore.load(folder, writer.PrecomputedEmbeddings())
    assert reader.similarity_search_with_score_by_vector(vectors[1].tolist(), 1)[0][0].id == "v1"
    reader.records()
    # read-only (immutable) SQLite opens: no journal, lock or WAL file, nothing modified
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    old_files = set(reader.backend._saved_docs.files)
    store.delete([f"v{i}" for i in range(0, 400, 2)])  # compaction: old files deleted
    store.save()
    assert not old_files & {p.name for p in folder.iterdir()}
    # the reader's open files still hold its generation (POSIX keeps unlinked data)
    (doc,) = reader.get_by_ids(["v8"])
    assert doc.metadata == meta(8)
    assert reader.similarity_search_with_score_by_vector(vectors[8].tolist(), 1)[0][0].id == "v8"


def test_a_format_2_store_with_json_documents_opens_and_is_rewritten_at_the_next_save(
    tmp_path: Path,
) -> None:
    """A folder exactly as format 2 wrote it: a base and one segment with JSON documents,
    a deletions file."""
    folder = tmp_path / "v2"
    folder.mkdir()
    embeddings: Any = writer.PrecomputedEmbeddings()
    vectors = unit(6, seed=5)
    entries = []
    for token, rows in (("00000001-aaaa", range(0, 4)), ("00000002-bbbb", range(4, 6))):
        np.save(folder / f"vectors-{token}.npy", vectors[list(rows)])
        docs = [{"id": f"v{i}", "page_content": f"v{i}.jpg", "metadata": meta(i)} for i in rows]
        (folder / f"documents-{token}.json").write_text(json.dumps(docs))
        entries.append(
            {
                "vectors": {
                    "file": f"vectors-{token}.npy",
                    "sha256": sha256_file(folder / f"vectors-{token}.npy"),
                },
                "documents": {
                    "file": f"documents-{token}.json",
                    "sha256": sha256_file(folder / f"documents-{token}.json"),
                },
            }
        )
    np.save(folder / "deletions-00000002-bbbb.npy", np.asarray([1], np.int64))
    manifest = {
        "format": "langchain-image-embeddings/faiss",
        "version": 2,
        "generation": 2,
        "model": {**model_record(embeddings), "dim": DIM},
        "count": 5,
        "dim": DIM,
        "metric": "inner_product",
        "rows": 6,
        **entries[0],
        "segments": [{"rows": 2, **entries[1]}],
        "deletions": {
            "file": "deletions-00000002-bbbb.npy",
            "sha256": sha256_file(folder / "deletions-00000002-bbbb.npy"),
            "count": 1,
        },
        "index": {"kind": "flat", "factory": "Flat", "file": None, "requested": "flat"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))

    store = FAISSImageStore.load(folder, embeddings)
    assert len(store) == 5 and store.get_by_ids(["v1"]) == []
    hit = store.similarity_search_with_score_by_vector(vectors[5].tolist(), 1)[0][0]
    assert hit.id == "v5" and hit.metadata == meta(5) and hit.page_content == "v5.jpg"
    found = store.similarity_search_with_score_by_vector(
        vectors[0].tolist(), 10, filter={"width": 640}
    )
    assert {d.id for d, _ in found} == {"v0", "v3"}
    assert set(store.records()) == {"v0", "v2", "v3", "v4", "v5"}
    store.full_save_below_bytes = 0  # even a big store is rewritten: JSON files go
    store.upsert_vectors(["n"], unit(1, seed=6), [Document(page_content="n.jpg")])
    store.save()
    upgraded = json.loads((folder / "manifest.json").read_text())
    assert upgraded["version"] == 3 and upgraded["segments"] == []
    assert upgraded["documents"]["file"].endswith(".sqlite")
    assert [p.name for p in folder.glob("*.json")] == ["manifest.json"]
    reopened = FAISSImageStore.load(folder, embeddings)
    assert reopened.records() == store.records() and len(reopened) == 6
    assert reopened.backend._docs == {} and not reopened.backend._saved_docs.in_memory


def test_the_id_maps_stay_in_memory_and_auto_budgets_index_plus_records() -> None:
    n, dim = 5_000_000, 512
    records = ann.records_memory(n)
    assert records == n * ann.RECORD_BYTES_PER_ROW
    hnsw = ann.estimate_memory("hnsw", n, dim)
    # the index alone fits, index + records does not: auto moves to the smaller index
    assert ann.resolve("auto", n, dim, memory_budget=hnsw + records // 2) == "ivf-pq"
    assert ann.resolve("auto", n, dim, memory_budget=hnsw + records) == "hnsw"
