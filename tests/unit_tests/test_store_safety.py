"""Issue 5, stores: crash safety under SIGKILL, one writer at a time, no NaN/zero vectors,
Chroma batching/upsert/retries, importing stock LangChain FAISS folders, strict CLI runs."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings import cli
from langchain_image_embeddings.cli import exit_codes
from langchain_image_embeddings.errors import (
    IMAGE_ERROR_CODES,
    StoreError,
    StoreLockedError,
)
from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore, content_id
from langchain_image_embeddings.vectorstores._records import BAD_VECTOR_CODE
from tests.unit_tests import store_crash_writer as writer
from tests.unit_tests.store_helpers import write_folder

WRITER = Path(writer.__file__)
REPO = Path(__file__).parents[2]


def _spawn(*args: str, log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdout=subprocess.PIPE,
        stderr=open(log, "a"),
        text=True,
        env=env,
    )


def _wait_ready(proc: subprocess.Popen[str], log: Path) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"writer did not start: {log.read_text()[-2000:]}"


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def _acked(ack: Path) -> set[int]:
    """Items whose write returned before the kill (complete lines only)."""
    if not ack.exists():
        return set()
    numbers: set[int] = set()
    for line in ack.read_text(encoding="ascii").split("\n")[:-1]:
        first, stop = (int(x) for x in line.split())
        numbers.update(range(first, stop))
    return numbers


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Any]:
    """Start processes that hold a store's writer lock; they are killed at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(kind: str, path: Path) -> subprocess.Popen[str]:
        log = tmp_path / "holder.log"
        proc = _spawn("hold", kind, str(path), log=log)
        procs.append(proc)
        _wait_ready(proc, log)
        return proc

    yield start
    for proc in procs:
        _kill(proc)


# -- crash loop -----------------------------------------------------------------------------
def _check_faiss(path: Path, acked: set[int]) -> int:
    embeddings: Any = writer.PrecomputedEmbeddings()
    try:
        store = FAISSImageStore.load(path, embeddings)
    except StoreError as exc:
        # refused only while no save ever completed, and then nothing was acknowledged
        assert not acked and "no FAISS image store" in str(exc)
        return 0
    records = store.records()
    assert len(records) == len(store)
    ids = set(records)
    missing = [n for n in sorted(acked) if writer.item_id(n) not in ids]
    assert not missing, f"acknowledged items lost after SIGKILL: {missing[:10]}"
    for n in sorted(acked)[-3:]:  # the vectors are intact, not just the ids
        doc, score = store.similarity_search_with_score_by_vector(
            writer.item_vector(n).tolist(), 1
        )[0]
        assert doc.id == writer.item_id(n) and doc.metadata["n"] == n and score > 0.9999
    return len(store)


@pytest.mark.parametrize("kind", ["faiss", "faiss-inc"])
def test_faiss_survives_sigkill_at_random_moments(kind: str, tmp_path: Path) -> None:
    rng = random.Random(5)
    path, ack, log = tmp_path / "store", tmp_path / "ack", tmp_path / "writer.log"
    kills = 0
    sizes = []
    states: list[dict[str, Any]] = []
    for round_ in range(10):
        proc = _spawn("loop", kind, str(path), str(ack), log=log)
        if round_ == 0:
            time.sleep(rng.uniform(0.05, 0.5))  # most likely while starting: before any save
        else:
            _wait_ready(proc, log)
            time.sleep(rng.uniform(0.0, 0.6))  # mid-batch, mid-save, mid-manifest swap ...
        _kill(proc)
        kills += 1
        sizes.append(_check_faiss(path, _acked(ack)))
        if (path / "manifest.json").exists():
            states.append(json.loads((path / "manifest.json").read_text()))
    assert kills == 10 and len(_acked(ack)) > 0 and sizes[-1] >= len(_acked(ack))
    # a clean run afterwards removes older generations and leftovers of killed saves
    proc = _spawn("loop", kind, str(path), str(ack), "1", log=log)
    assert proc.wait(timeout=120) == 0, log.read_text()[-2000:]
    assert proc.stdout is not None
    proc.stdout.close()
    manifest = json.loads((path / "manifest.json").read_text())
    if kind == "faiss":  # small stores are rewritten whole: one base segment
        assert sorted(p.name.split("-")[0] for p in path.iterdir()) == [
            "documents",
            "manifest.json",
            "vectors",
        ]
    else:  # saved as segments + deletions; exactly the files the manifest names are left
        # the kills hit a store saved segment by segment, with deletions
        assert any(state["segments"] for state in states)
        assert any(state["deletions"] for state in states)
        named = [manifest["vectors"]["file"], manifest["documents"]["file"]]
        for segment in manifest["segments"]:
            named += [segment["vectors"]["file"], segment["documents"]["file"]]
        if manifest["deletions"]:
            named.append(manifest["deletions"]["file"])
        assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == sorted(
            [*named, "manifest.json"]
        )
    assert _check_faiss(path, _acked(ack)) >= len(_acked(ack))  # + saved, not yet acked


#: How Chroma reports an HNSW segment torn by a kill (chroma-core/chroma#7678, hnswlib#47).
CHROMA_WEDGE = (
    "Failed to apply logs to the hnsw segment writer",
    "Error constructing hnsw segment reader",
)


def test_embedded_chroma_survives_sigkill_during_ingest(tmp_path: Path) -> None:
    import chromadb
    from chromadb.api.client import SharedSystemClient

    rng = random.Random(7)
    path, ack, log = tmp_path / "chroma", tmp_path / "ack", tmp_path / "writer.log"
    embeddings: Any = writer.PrecomputedEmbeddings()
    for _ in range(6):
        proc = _spawn("loop", "chroma", str(path), str(ack), log=log)
        _wait_ready(proc, log)
        time.sleep(rng.uniform(0.0, 0.8))
        _kill(proc)
        acked = _acked(ack)
        SharedSystemClient.clear_system_cache()
        ids = [writer.item_id(n) for n in sorted(acked)]
        try:
            store = ChromaImageStore.persistent(path, embeddings)
            present = store.existing_ids(ids)
        except StoreError as exc:
            if not any(marker in str(exc) for marker in CHROMA_WEDGE):
                raise
            # About 1 kill in 60 here: chromadb 1.5.x's own HNSW replay wedges the collection
            # (chroma-core/chroma#7678, open upstream); fresh processes cannot read it either.
            pytest.xfail(f"chromadb upstream bug chroma-core/chroma#7678 after a SIGKILL: {exc}")
        assert len(present) == len(ids), f"{len(ids) - len(present)} acknowledged items lost"
        assert len(store) >= len(ids)
        if acked:
            n = max(acked)
            doc, score = store.similarity_search_with_score_by_vector(
                writer.item_vector(n).tolist(), 1
            )[0]
            assert doc.id == writer.item_id(n) and score > 0.999
        del store
        SharedSystemClient.clear_system_cache()
    assert len(_acked(ack)) > 0
    assert chromadb.__version__  # the embedded client really was exercised


# -- one writer at a time -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["faiss", "chroma"])
def test_second_writer_fails_fast_with_store_locked(kind: str, tmp_path: Path, holder: Any) -> None:
    path, log = tmp_path / "store", tmp_path / "try.log"
    first = holder(kind, path)
    # a second writer process is refused at once, with the directory and the holder's pid
    second = _spawn("try", kind, str(path), log=log)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 3, log.read_text()[-2000:]
    assert "store locked" in out and str(path) in out and f"pid {first.pid}" in out
    # this process is a writer too: refused as well, and nothing is written
    embeddings: Any = writer.PrecomputedEmbeddings()
    store: Any = (
        FAISSImageStore.open(path, embeddings)
        if kind == "faiss"
        else ChromaImageStore.persistent(path, embeddings)
    )
    with pytest.raises(StoreLockedError, match="store locked"):
        store.upsert_vectors(
            [writer.item_id(0)], writer.item_vector(0)[None], [writer.item_document(0)]
        )
    assert len(store) == 0
    # once the first writer is gone (even by SIGKILL), the lock is free
    _kill(first)
    store.upsert_vectors(
        [writer.item_id(0)], writer.item_vector(0)[None], [writer.item_document(0)]
    )
    store.persist()
    assert len(store) == 1
    store.close()


def test_readers_need_no_lock_and_stale_writers_are_refused(tmp_path: Path, holder: Any) -> None:
    embeddings: Any = writer.PrecomputedEmbeddings()
    path = tmp_path / "store"
    seed = FAISSImageStore(embeddings, path)
    seed.upsert_vectors([writer.item_id(1)], writer.item_vector(1)[None], [writer.item_document(1)])
    seed.save()
    seed.close()
    a = FAISSImageStore.load(path, embeddings)
    b = FAISSImageStore.load(path, embeddings)
    b.upsert_vectors([writer.item_id(2)], writer.item_vector(2)[None], [writer.item_document(2)])
    b.save()
    # a was loaded before b's save: writing it would silently drop item 2
    with pytest.raises(StoreError, match="another writer"):
        a.upsert_vectors(
            [writer.item_id(3)], writer.item_vector(3)[None], [writer.item_document(3)]
        )
    b.close()
    a.close()
    holder("faiss", path)  # another process writes: readers still open the store
    assert set(FAISSImageStore.load(path, embeddings).records()) == {
        writer.item_id(1),
        writer.item_id(2),
    }


# -- NaN/inf and zero vectors ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["faiss", "chroma"])
def test_nan_and_zero_vectors_are_per_item_failures_never_written(
    kind: str, tiny_clip_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = tiny_clip_embeddings.encoder
    original = encoder.encode_images

    def degenerate(pixels: Any) -> Any:
        out = original(pixels).clone()
        out[1] = 0.0  # zero norm
        out[2, 0] = float("nan")
        out[3, 1] = float("inf")
        return out

    monkeypatch.setattr(encoder, "encode_images", degenerate)
    store: Any = (
        FAISSImageStore(tiny_clip_embeddings, tmp_path / "f")
        if kind == "faiss"
        else ChromaImageStore.persistent(tmp_path / "c", tiny_clip_embeddings)
    )
    paths = write_folder(tmp_path / "imgs", 5)
    result = store.add_images(paths)
    assert len(result.added) == 2 and len(store) == 2
    assert sorted(e.index for e in result.failures) == [1, 2, 3]
    assert all(e.code == BAD_VECTOR_CODE and e.code in IMAGE_ERROR_CODES for e in result.failures)
    reasons = {e.index: e.reason for e in result.failures}
    assert "zero-norm" in reasons[1] and "NaN/inf" in reasons[2] and "NaN/inf" in reasons[3]
    assert {Path(e.source).name for e in result.failures} == {p.name for p in paths[1:4]}
    # the primitive refuses them too, naming the id, and writes nothing of the batch
    good = np.ones((1, 32), np.float32) / np.sqrt(32)
    for bad in (np.zeros((1, 32), np.float32), np.full((1, 32), np.nan, np.float32)):
        with pytest.raises(StoreError, match="bad-id"):
            store.upsert_vectors(
                ["ok-id", "bad-id"],
                np.concatenate([good, bad]),
                [store.get_by_ids([result.added[0]])[0]] * 2,
            )
    assert len(store) == 2
    store.close()


# -- Chroma: batches, reruns, retries -------------------------------------------------------
def test_chroma_interrupted_ingest_can_be_rerun_without_duplicates(
    tiny_clip_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from langchain_image_embeddings.vectorstores.chroma import _store as chroma_store

    monkeypatch.setattr(chroma_store, "BACKOFF_S", 0.0)
    store = ChromaImageStore.persistent(tmp_path / "db", tiny_clip_embeddings)
    monkeypatch.setattr(store.client, "get_max_batch_size", lambda: 2)
    paths = write_folder(tmp_path / "imgs", 5)
    original = store.collection.upsert
    sizes: list[int] = []

    def flaky(**kwargs: Any) -> Any:
        sizes.append(len(kwargs["ids"]))
        if len(sizes) >= 2:
            raise httpx.ConnectError("connection refused")
        return original(**kwargs)

    monkeypatch.setattr(store.collection, "upsert", flaky)
    with pytest.raises(StoreError, match="after 3 tries"):
        store.add_images(paths)
    assert sizes == [2, 2, 2, 2] and len(store) == 2  # 1 batch written, then 3 bounded tries
    monkeypatch.setattr(store.collection, "upsert", original)
    calls: list[int] = []

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["ids"]))
        return original(**kwargs)

    monkeypatch.setattr(store.collection, "upsert", counting)
    result = store.add_images(paths)  # the rerun: already-written images are skipped
    assert len(result.skipped) == 2 and len(result.added) == 3 and calls == [2, 1]
    expected = {content_id(d, tiny_clip_embeddings.model_id) for d in _sha256s(paths)}
    assert set(store.records()) == expected and len(store) == 5
    store.upsert_vectors(  # upsert of existing ids replaces, never duplicates
        result.added,
        np.stack([np.eye(32, dtype=np.float32)[i] for i in range(3)]),
        store.get_by_ids(result.added),
    )
    assert len(store) == 5
    store.close()


def _sha256s(paths: list[Path]) -> list[str]:
    import hashlib

    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_chroma_errors_become_store_errors_with_bounded_retries(
    tiny_clip_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from langchain_image_embeddings.vectorstores.chroma._client import call_chroma

    calls: list[str] = []

    def down() -> int:
        calls.append("x")
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(StoreError, match="cannot reach the Chroma server after 3 tries"):
        call_chroma("count", down, backoff_s=0.0)
    assert len(calls) == 3

    def broken() -> int:
        calls.append("y")
        raise RuntimeError("InvalidArgumentError: bad where clause")

    with pytest.raises(StoreError, match="bad where clause"):
        call_chroma("query", broken, backoff_s=0.0)
    assert calls.count("y") == 1  # not a connection error: no retry

    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach"):
        ChromaImageStore.http("127.0.0.1", 9, tiny_clip_embeddings)  # nothing listens on 9
    assert time.monotonic() - started < 60  # bounded (generous: not a timing assertion)


# -- importing stock LangChain FAISS ---------------------------------------------------------
def test_import_stock_langchain_faiss_folder_is_explicit(
    tiny_clip_embeddings: Any, lite0_embeddings: Any, tmp_path: Path
) -> None:
    from langchain_community.vectorstores import FAISS

    from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings

    paths = [str(p) for p in write_folder(tmp_path / "imgs", 4)]
    stock = FAISS.from_texts(
        paths,
        ImageDocumentEmbeddings(tiny_clip_embeddings),
        metadatas=[{"source": p} for p in paths],
    )
    stock.save_local(str(tmp_path / "stock"))
    assert (tmp_path / "stock" / "index.pkl").exists()
    with pytest.raises(StoreError, match="allow_dangerous_deserialization"):
        FAISSImageStore.import_langchain_faiss(
            tmp_path / "stock", tiny_clip_embeddings, allow_dangerous_deserialization=False
        )
    store = FAISSImageStore.import_langchain_faiss(
        tmp_path / "stock",
        tiny_clip_embeddings,
        allow_dangerous_deserialization=True,
        path=tmp_path / "ours",
    )
    assert len(store) == 4
    files = sorted(p.suffix for p in (tmp_path / "ours").iterdir())
    assert files == [".json", ".npy", ".sqlite"]  # manifest, vectors, documents: no pickle
    store.close()
    reopened = FAISSImageStore.load(tmp_path / "ours", tiny_clip_embeddings)
    for path in paths:
        doc, score = reopened.similarity_search_by_image_with_relevance_score(path, k=1)[0]
        assert doc.page_content == path and doc.metadata["source"] == path and score > 0.999
    with pytest.raises(StoreError, match="-d"):
        FAISSImageStore.import_langchain_faiss(
            tmp_path / "stock",
            lite0_embeddings,  # another model, another dimension
            allow_dangerous_deserialization=True,
        )


# -- CLI: report, strict runs, lock ---------------------------------------------------------
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_cli_report_strict_run_leaves_store_untouched_and_skip_errors(
    lite0_embeddings: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    holder: Any,
) -> None:
    folder = tmp_path / "imgs"
    write_folder(folder, 2)
    index = tmp_path / "idx"
    store = f"faiss:{index}"
    base = ["index", str(folder), "--store", store, "--device", "cpu", "--quiet"]
    assert cli.main([*base, "--model", "timm:efficientnet_lite0"]) == 0
    capsys.readouterr()
    before = _snapshot(index)

    write_folder(folder, 1, start=2)  # a new good image ...
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # ... and a bad one
    (folder / "empty.jpg").write_bytes(b"")
    report = tmp_path / "report.jsonl"
    code = cli.main([*base, "--report", str(report)])
    out = capsys.readouterr().out
    assert code == exit_codes.EXIT_INPUT_ERRORS and "nothing was written" in out
    assert _snapshot(index) == before  # strict run: the store is byte-for-byte untouched
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(rows) == 5 and all(
        set(r) == {"input", "status", "code", "reason", "duplicate_of"} for r in rows
    )
    status = {Path(r["input"]).name: r for r in rows}
    assert status["bad.png"]["status"] == "error" and status["bad.png"]["code"] in IMAGE_ERROR_CODES
    assert status["empty.jpg"]["code"] == "empty" and status["empty.jpg"]["reason"]
    assert all(status[f"img0{i}.png"]["status"] == "ok" for i in range(3))

    code = cli.main([*base, "--report", str(report), "--skip-errors", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == exit_codes.EXIT_OK and summary["committed"] and summary["total"] == 3
    assert summary["added"] == 1 and summary["failed"] == 2
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(r["status"] for r in rows) == ["error", "error", "ok", "ok", "ok"]

    holder("dir", index)  # another process writes the store: refused at once
    after = _snapshot(index)
    code = cli.main([*base, "--skip-errors"])
    err = capsys.readouterr().err
    assert code == exit_codes.EXIT_STORE and "store locked" in err and str(index) in err
    assert _snapshot(index) == after


def test_sync_all_or_nothing_leaves_chroma_untouched(
    tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    from langchain_image_embeddings.sync import sync_directory

    folder = tmp_path / "imgs"
    write_folder(folder, 2)
    store = ChromaImageStore.persistent(tmp_path / "db", tiny_clip_embeddings)
    assert sync_directory(store, folder, all_or_nothing=True).committed
    before = store.records()
    write_folder(folder, 2, start=2)
    (folder / "img00.png").unlink()  # would be a delete
    shutil.copy(folder / "img02.png", folder / "broken.png")
    (folder / "broken.png").write_bytes((folder / "broken.png").read_bytes()[:60])
    result = sync_directory(store, folder, all_or_nothing=True)
    assert not result.committed and [Path(e.source).name for e in result.failed] == ["broken.png"]
    assert store.records() == before  # no add, no delete
    report = {Path(r["input"]).name: r["status"] for r in result.report()}
    assert report == {
        "img01.png": "ok",
        "img02.png": "ok",
        "img03.png": "ok",
        "broken.png": "error",
    }
    result = sync_directory(store, folder)  # skip mode: the others are written
    assert result.committed and len(result.added) == 2 and len(result.removed) == 1
    assert len(store) == 3
    store.close()


def test_faiss_store_is_safe_to_share_between_threads(tmp_path: Path) -> None:
    """Probe round: saving while another thread added rows lost rows ("wrote 95 of 97 rows")
    and left the store unable to save ever again."""
    import threading

    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = FAISSImageStore(DeterministicFakeEmbedding(size=8), tmp_path / "shared")
    errors: list[BaseException] = []

    def guarded(work: Any) -> Any:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # collected: a thread's exception is otherwise lost
                errors.append(exc)

        return threading.Thread(target=run)

    def add(t: int) -> None:
        for j in range(150):
            store.add_texts([f"t{t}-{j}"], ids=[f"t{t}-{j}"])
            if j % 10 == 0:
                store.delete([f"t{t}-{j - 5}"])
                store.similarity_search(f"t{t}-{j}", k=3)
                store.max_marginal_relevance_search(f"t{t}-{j}", k=2)

    def save() -> None:
        for _ in range(25):
            store.save()

    threads = [guarded(lambda t=t: add(t)) for t in range(3)] + [guarded(save)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store.save()
    assert len(store) == 3 * (150 - 14)
    reopened = FAISSImageStore.load(tmp_path / "shared", store.embeddings)
    assert sorted(reopened.records()) == sorted(store.records())
    store.close()


def test_a_store_folder_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    """Probe round: writes raised a raw FileExistsError from the writer lock's mkdir."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    not_a_folder = tmp_path / "index"
    not_a_folder.write_text("a file")
    store = FAISSImageStore(DeterministicFakeEmbedding(size=8), not_a_folder)
    with pytest.raises(StoreError, match="index"):
        store.add_texts(["a"])
    with pytest.raises(StoreError, match="index"):
        store.save()
    assert not_a_folder.read_text() == "a file"


# -- closing saves ---------------------------------------------------------------------
def test_closing_a_faiss_store_saves_and_an_exception_in_with_does_not(tmp_path: Path) -> None:
    """``index()`` (or any write) on a folder store that was closed without ``save()`` lost
    everything, and a persistent record manager then skipped those documents forever."""
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.indexing import InMemoryRecordManager, index

    embeddings = DeterministicFakeEmbedding(size=8)
    folder = tmp_path / "tracked"
    manager = InMemoryRecordManager("faiss-texts")
    manager.create_schema()
    docs = [Document(page_content=t, metadata={"source": t}) for t in ("a", "b", "c")]
    with FAISSImageStore(embeddings, folder) as store:
        assert (
            index(
                docs, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256"
            )["num_added"]
            == 3
        )
        assert store.has_unsaved_changes()
    reopened = FAISSImageStore(embeddings, folder)
    assert sorted(d.page_content for d in reopened.similarity_search("a", k=5)) == ["a", "b", "c"]
    reopened.delete([reopened.similarity_search("a", k=1)[0].id or ""])
    reopened.close()  # a plain close saves the deletion too
    assert len(FAISSImageStore(embeddings, folder)) == 2

    with pytest.raises(RuntimeError, match="boom"), FAISSImageStore(embeddings, folder) as store:
        store.add_texts(["d"])
        raise RuntimeError("boom")
    assert len(FAISSImageStore(embeddings, folder)) == 2  # the folder keeps its last save

    moved = FAISSImageStore(embeddings, folder)
    moved.add_texts(["e"])
    moved.save(tmp_path / "elsewhere")  # saving to another folder leaves this one alone
    assert len(FAISSImageStore(embeddings, folder)) == 2
    assert len(FAISSImageStore(embeddings, tmp_path / "elsewhere")) == 3
    moved.close()
