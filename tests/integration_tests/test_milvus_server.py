"""The Milvus store against a Milvus Lite server (``milvus-lite server`` on 127.0.0.1)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_image_embeddings import cli
from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.retrievers import ImageToImageRetriever, TextToImageRetriever
from langchain_image_embeddings.sync import sync_directory
from langchain_image_embeddings.vectorstores import MilvusImageStore, open_store, store_info
from langchain_image_embeddings.vectorstores import _retry as retry_module
from langchain_image_embeddings.vectorstores._filters import metadata_matches
from langchain_image_embeddings.vectorstores.milvus import _calls as milvus_calls
from tests.integration_tests.conftest import MilvusLiteServer
from tests.unit_tests.store_helpers import EncoderSpy, write_folder, write_image
from tests.unit_tests.test_vectorstores_common import (
    run_cli_index_search,
    run_contract,
    run_relevance,
)

pytestmark = pytest.mark.integration


def _collection() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def test_contract(
    milvus_server: tuple[str, int],
    tiny_clip_embeddings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = milvus_server
    store = MilvusImageStore.http(host, port, tiny_clip_embeddings, collection_name=_collection())
    run_contract(store, tmp_path / "imgs", EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch))
    store.drop()


def test_relevance_real_photos(
    milvus_server: tuple[str, int], lite0_embeddings: Any, photos_dir: Path
) -> None:
    host, port = milvus_server
    store = MilvusImageStore.http(host, port, lite0_embeddings, collection_name=_collection())
    run_relevance(store, photos_dir)
    store.drop()


def test_model_recorded_and_mismatch_refused(
    milvus_server: tuple[str, int],
    tiny_clip_embeddings: Any,
    lite0_embeddings: Any,
    tmp_path: Path,
) -> None:
    host, port = milvus_server
    name = _collection()
    store = MilvusImageStore.http(host, port, tiny_clip_embeddings, collection_name=name)
    store.add_images(write_folder(tmp_path, 2))
    info = store_info(f"milvus+http://{host}:{port}/{name}")
    assert info["model"] == tiny_clip_embeddings.model_id and info["count"] == 2
    assert (info["dim"], info["metric"], info["index"]) == (
        tiny_clip_embeddings.dim,
        "cosine",
        "HNSW",
    )
    with pytest.raises(ModelMismatchError, match="would mix vector spaces"):
        MilvusImageStore.http(host, port, lite0_embeddings, collection_name=name)
    with pytest.raises(ModelMismatchError):
        MilvusImageStore.http(host, port, DeterministicFakeEmbedding(size=8), collection_name=name)
    # the same model reopens it; a missing collection is not created when create=False
    assert len(MilvusImageStore.http(host, port, tiny_clip_embeddings, collection_name=name)) == 2
    with pytest.raises(StoreError, match="no Milvus collection"):
        open_store(
            f"milvus+http://{host}:{port}/{_collection()}", tiny_clip_embeddings, create=False
        )
    store.drop()


def test_unreachable_server_is_a_store_error(
    own_milvus_server: MilvusLiteServer,
    tiny_clip_embeddings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry_module, "time", SimpleNamespace(sleep=waits.append))
    server = own_milvus_server
    # wrong port: retried, then StoreError
    with pytest.raises(StoreError, match="cannot reach the Milvus server"):
        open_store(f"milvus+http://127.0.0.1:{_closed_port()}/photos", tiny_clip_embeddings)
    assert len(waits) == milvus_calls.RETRIES - 1
    # server stopped under an open store: reads and writes fail as StoreError after retries
    store = MilvusImageStore.http(
        server.host, server.port, tiny_clip_embeddings, collection_name="gone"
    )
    paths = write_folder(tmp_path, 2)
    store.add_images(paths)
    server.stop()
    waits.clear()
    with pytest.raises(StoreError, match="after 3 tries"):
        len(store)
    assert waits == [milvus_calls.BACKOFF_S, 2 * milvus_calls.BACKOFF_S]
    with pytest.raises(StoreError):
        store.similarity_search_by_image_with_relevance_score(paths[0], k=1)
    with pytest.raises(StoreError):
        store.add_images(write_folder(tmp_path / "more", 1, start=5))


def test_an_outage_logs_no_pymilvus_traceback(
    own_milvus_server: MilvusLiteServer,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server stopped mid-session is a ``StoreError`` and nothing else: pymilvus's connection
    manager logged three ``Connection recovery failed`` warnings with gRPC tracebacks per
    failed call, through its own stderr handler (the ``pymilvus`` logger does not propagate)."""
    import logging

    import pymilvus  # noqa: F401 - its import configures its loggers (and would drop our handler)

    monkeypatch.setattr(retry_module, "time", SimpleNamespace(sleep=lambda _s: None))
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(logging.DEBUG)
    watched = [logging.getLogger(), logging.getLogger("pymilvus")]
    for logger in watched:
        logger.addHandler(keep)
    try:
        server = own_milvus_server
        store = MilvusImageStore.http(
            server.host, server.port, DeterministicFakeEmbedding(size=8), collection_name="gone"
        )
        store.add_texts(["a", "b"], ids=["1", "2"])
        capfd.readouterr()
        server.stop()
        with pytest.raises(StoreError, match="after 3 tries"):
            len(store)
        with pytest.raises(StoreError, match="after 3 tries"):
            store.similarity_search("a", k=1)
        with pytest.raises(StoreError, match="after 3 tries"):
            store.add_texts(["c"], ids=["3"])
        err = capfd.readouterr().err
        assert "Traceback" not in err and "Connection recovery failed" not in err, err
        assert [r.getMessage() for r in records if r.name.startswith("pymilvus")] == []
        # outside our calls pymilvus's loggers are left alone
        logging.getLogger("pymilvus.client.connection_manager").warning("still heard")
        assert [r.getMessage() for r in records] == ["still heard"]
    finally:
        for logger in watched:
            logger.removeHandler(keep)


def _closed_port() -> int:
    from tests.integration_tests.conftest import _free_port

    return _free_port()


def test_sync_retrievers_and_reopen(
    milvus_server: tuple[str, int],
    tiny_clip_embeddings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = milvus_server
    spec = f"milvus+http://{host}:{port}/{_collection()}"
    spy = EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch)
    paths = write_folder(tmp_path / "imgs", 4)
    assert sync_directory(open_store(spec, tiny_clip_embeddings), tmp_path / "imgs").embedded == 4
    assert spy.take() == 4
    again = sync_directory(open_store(spec, tiny_clip_embeddings), tmp_path / "imgs")
    assert spy.take() == 0 and len(again.unchanged) == 4
    write_image(paths[0], seed=91)
    paths[3].unlink()
    result = sync_directory(open_store(spec, tiny_clip_embeddings), tmp_path / "imgs")
    assert spy.take() == 1
    assert (len(result.updated), len(result.removed), len(result.unchanged)) == (1, 1, 2)
    assert store_info(spec)["count"] == 3
    store = open_store(spec, tiny_clip_embeddings)
    docs = ImageToImageRetriever(store=store, k=2).invoke(str(paths[1]))
    assert docs[0].page_content == str(paths[1].resolve()) and docs[0].metadata["score"] >= 0.99
    assert len(TextToImageRetriever(store=store, k=3).invoke("a photo")) == 3
    # duplicates share one record listing both paths; removing one path keeps the record
    (tmp_path / "imgs" / "copy.png").write_bytes(paths[1].read_bytes())
    dup = sync_directory(store, tmp_path / "imgs")
    assert len(dup.duplicates) == 1 and len(store) == 3
    record = store.get_by_ids([store.add_images([paths[1]]).skipped[0]])[0]
    assert sorted(Path(p).name for p in record.metadata["sources"]) == ["copy.png", "img01.png"]
    paths[1].unlink()
    sync_directory(store, tmp_path / "imgs")
    assert len(store) == 3
    assert [Path(p).name for p in store.get_by_ids([record.id])[0].metadata["sources"]] == [
        "copy.png"
    ]
    store.drop()


FILTER_ROWS: list[dict[str, Any]] = [
    {"format": "PNG", "width": 640, "tags": ["cat", "sofa"], "flag": True},
    {"format": "JPEG", "width": 1024, "tags": ["dog"], "flag": False},
    {"format": "JPEG", "width": 320, "tags": [], "note": 'say "hi"\\ \n\t café'},
    {"format": "GIF", "width": 512, "note": None},
    {"width": 2048},
]

FILTERS: list[Any] = [
    {"format": "PNG"},
    {"format": ["PNG", "GIF"]},
    {"format": {"$in": ["JPEG"]}},
    {"format": {"$in": []}},
    {"format": {"$nin": ["JPEG"]}},
    {"format": {"$ne": "JPEG"}},
    {"width": {"$gte": 512, "$lt": 2048}},
    {"width": {"$gt": 640}},
    {"width": {"$lte": 512}, "format": "JPEG"},
    {"tags": {"$contains": "cat"}},
    {"flag": True},
    {"note": 'say "hi"\\ \n\t café'},
    {"note": None},
    {"note": {"$ne": None}},
    {"$or": [{"format": "GIF"}, {"width": {"$gt": 1500}}]},
    {"$and": [{"format": "JPEG"}, {"width": {"$gt": 500}}]},
    {"$not": {"format": "JPEG"}},
    {"$not": {"format": ["PNG", "JPEG"]}},
    {"format": {"$nin": ["PNG", "JPEG"]}},
    {"format": {"$nin": ["PNG", None]}},
    {"note": {"$in": [None, "x"]}},
    {"$not": {"width": {"$gt": 500}, "flag": False}},
    {"format": "WEBP"},
    {"missing": {"$gt": 1}},
]


def test_filters_match_the_faiss_semantics(milvus_server: tuple[str, int]) -> None:
    """Every dict filter selects on Milvus what ``metadata_matches`` (FAISS) selects."""
    host, port = milvus_server
    store = MilvusImageStore.http(
        host, port, DeterministicFakeEmbedding(size=8), collection_name=_collection()
    )
    ids = [f"r{i}" for i in range(len(FILTER_ROWS))]
    store.add_texts([f"row {i}" for i in ids], [dict(m) for m in FILTER_ROWS], ids=ids)
    query = [1.0] * 8
    for flt in FILTERS:
        got = {d.id for d in store.similarity_search_by_vector(query, k=10, filter=flt)}
        want = {i for i, m in zip(ids, FILTER_ROWS, strict=True) if metadata_matches(m, flt)}
        assert got == want, flt
    # callables filter the fetch_k nearest; strings are Milvus expressions
    hits = store.similarity_search_by_vector(query, k=10, filter=lambda m: m.get("width") == 320)
    assert [d.id for d in hits] == ["r2"]
    hits = store.similarity_search_by_vector(query, k=10, filter='metadata["width"] == 2048')
    assert [d.id for d in hits] == ["r4"]
    with pytest.raises(ValueError, match="unknown filter operator"):
        store.similarity_search_by_vector(query, k=1, filter={"width": {"$near": 3}})
    store.drop()


def test_hnsw_recall_against_exact(milvus_server: tuple[str, int]) -> None:
    """HNSW is approximate: recall@10 against brute force on clustered unit vectors."""
    host, port = milvus_server
    rng = np.random.default_rng(0)
    dim, n, clusters = 64, 3000, 30
    centres = rng.normal(size=(clusters, dim))
    data = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    store = MilvusImageStore.http(
        host, port, DeterministicFakeEmbedding(size=dim), collection_name=_collection()
    )
    ids = [f"v{i}" for i in range(n)]
    started = time.perf_counter()
    store.upsert_vectors(ids, data, [Document(page_content=i) for i in ids])
    assert time.perf_counter() - started < 30 and len(store) == n
    queries = data[rng.choice(n, 50, replace=False)] + 0.1 * rng.normal(size=(50, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    found = 0
    for q, truth in zip(queries, exact, strict=True):
        hits = store.similarity_search_with_score_by_vector(list(q), k=10)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        found += len({int(str(d.id)[1:]) for d, _ in hits} & set(truth.tolist()))
    assert found / (10 * len(queries)) >= 0.95
    store.drop()


@pytest.mark.slow
def test_cli_index_search_info(
    milvus_server: tuple[str, int], photos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = milvus_server
    name = _collection()
    store = f"milvus+http://{host}:{port}/{name}"
    run_cli_index_search(store, photos_dir, capsys)
    assert cli.main(["info", "--store", store, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "milvus+http" and info["count"] == 8
    assert info["model"] == "timm:efficientnet_lite0" and info["collection"] == name
    MilvusImageStore.http(host, port, None, collection_name=name).drop()


def test_ids_with_quotes_are_read_updated_and_deleted(milvus_server: tuple[str, int]) -> None:
    """Ids are quoted and escaped in the expressions the store sends: pymilvus's ``ids=``
    pasted them unescaped, so ``it's`` was written but then broke get, delete and MMR."""
    host, port = milvus_server
    store = MilvusImageStore.http(
        host, port, DeterministicFakeEmbedding(size=8), collection_name=_collection()
    )
    ids = ["plain", "it's", 'say "hi"', "back\\slash", "new\nline", "ïd ü/\"'"]
    store.add_texts([f"text {n}" for n in range(len(ids))], ids=ids)
    assert [d.id for d in store.get_by_ids(ids)] == ids
    assert store.existing_ids(["it's", "nope"]) == {"it's"}
    hits = store.max_marginal_relevance_search("text 1", k=len(ids), fetch_k=len(ids))
    assert {d.id for d in hits} == set(ids)
    store.delete(["it's", 'say "hi"'])
    assert {d.id for d in store.get_by_ids(ids)} == set(ids) - {"it's", 'say "hi"'}
    assert len(store) == len(ids) - 2
    store.drop()


def test_a_milvus_lite_file_uri_is_a_store(tmp_path: Path) -> None:
    """``connect("x.db")``: pymilvus serves the file on 127.0.0.1 from this process; a
    second store on the file sees the first one's writes; a folder that does not exist is
    a ``StoreError`` naming it."""
    embeddings = DeterministicFakeEmbedding(size=8)
    uri = str(tmp_path / "lite.db")
    first = MilvusImageStore.connect(uri, embeddings, collection_name="texts")
    first.add_texts(["a", "b"], ids=["1", "2"])
    second = MilvusImageStore.connect(uri, embeddings, collection_name="texts")
    assert len(second) == 2 and [d.id for d in second.get_by_ids(["2"])] == ["2"]
    first.close()
    second.close()
    with pytest.raises(StoreError, match="nowhere"):
        MilvusImageStore.connect(str(tmp_path / "nowhere" / "x.db"), embeddings)


def test_a_text_store_sees_the_collection_another_client_created(
    milvus_server: tuple[str, int],
) -> None:
    """A text model's collection appears on the first write: a store opened before another
    client's first write read an empty store forever (its "no collection" was cached)."""
    host, port = milvus_server
    name = _collection()
    embeddings = DeterministicFakeEmbedding(size=8)
    reader = MilvusImageStore.http(host, port, embeddings, collection_name=name)
    writer = MilvusImageStore.http(host, port, embeddings, collection_name=name)
    assert len(reader) == 0
    writer.add_texts(["a", "b"], ids=["1", "2"])
    assert len(reader) == 2 and reader.dim == 8
    assert [d.id for d in reader.similarity_search("a", k=1)] == ["1"]
    assert [d.id for d in reader.get_by_ids(["2"])] == ["2"]
    reader.add_texts(["c"], ids=["3"])
    assert len(writer) == 3
    with pytest.raises(StoreError, match="dimension 8"):  # another size is still refused
        MilvusImageStore.http(
            host, port, DeterministicFakeEmbedding(size=12), collection_name=name
        ).add_texts(["d"])
    writer.drop()


def test_a_search_is_one_round_trip(milvus_server: tuple[str, int]) -> None:
    """Searches asked the server for a count first (a second round trip per query) only to
    return ``[]`` on an empty store; an empty or missing collection still returns ``[]``."""
    host, port = milvus_server
    embeddings = DeterministicFakeEmbedding(size=8)
    store = MilvusImageStore.http(host, port, embeddings, collection_name=_collection())
    assert store.similarity_search("a", k=2) == []  # no collection yet
    store.add_texts(["a", "b", "c"], ids=["1", "2", "3"])
    calls: list[str] = []
    for name in ("query", "search", "get"):
        real = getattr(store.client, name)

        def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        setattr(store.client, name, spy)
    hits = store.similarity_search_with_score("b", k=2)
    assert len(hits) == 2 and hits[0][0].page_content == "b"
    assert calls == ["search"]
    store.delete(["1", "2", "3"])
    assert store.similarity_search("a", k=2) == []
    store.drop()
