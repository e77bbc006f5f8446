"""Shards into Milvus through import jobs (issue 26, "Milvus at index speed"), against a real
Milvus Lite server: the import files read back equal what ``load_shards`` would write; a
fake import-job REST server that imports the files into the Lite collection with pymilvus
(Lite has no import jobs of its own) shows the files fit the collection and the store ends
up as a load would leave it; and ``imgemb load --milvus-import`` on Lite says at once that
Lite has no import jobs, writing nothing."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.cli import main
from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.scale.bulk_import import import_shards, write_import_files
from langchain_image_embeddings.scale.plan import Shard
from langchain_image_embeddings.scale.shards import ShardRows, write_shard
from langchain_image_embeddings.vectorstores import MilvusImageStore, content_id
from langchain_image_embeddings.vectorstores._records import model_record
from langchain_image_embeddings.vectorstores.milvus._import import IMPORT_API, import_schema
from tests.scale_tests.corpus import save_tiny_model

pytestmark = pytest.mark.integration

#: The inputs of the two shards: (path, content key). Equal keys are identical bytes:
#: a3 repeats a0 inside shard 0, b0 repeats a1 from shard 0; a4 failed at embedding.
SHARDS = [
    [("/p/a0.jpg", "k0"), ("/p/a1.jpg", "k1"), ("/p/a2.jpg", "k2"), ("/p/a3.jpg", "k0")],
    [("/p/b0.jpg", "k1"), ("/p/b1.jpg", "k3"), ("/p/b2.jpg", "k4")],
]
FAILED = "/p/a4.jpg"
KEYS = ["k0", "k1", "k2", "k3", "k4"]


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory: pytest.TempPathFactory) -> ImageEmbeddings:
    return ImageEmbeddings(save_tiny_model(tmp_path_factory.mktemp("import-model")), device="cpu")


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _vector(key: str, dim: int) -> np.ndarray:
    v = np.random.default_rng(int(key[1:])).standard_normal(dim).astype(np.float32)
    return v * 3.0  # not unit length: the import files hold unit vectors


def _write_shards(
    folder: Path, embeddings: ImageEmbeddings, nan_at: int | None = None, extra_dim: int = 0
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = model_record(embeddings)
    record["dim"] = dim = int(record["dim"]) + extra_dim
    for index, rows in enumerate(SHARDS):
        inputs = [p for p, _ in rows] + ([FAILED] if index == 0 else [])
        metas: list[dict[str, Any] | None] = [
            {"source": p, "sha256": _sha(k), "width": 8, "height": 8, "format": "JPEG"}
            for p, k in rows
        ]
        vectors = np.stack(
            [_vector(k, dim) for _, k in rows] + ([np.zeros(dim)] if index == 0 else [])
        )
        if nan_at is not None and index == 1:
            vectors[nan_at, 0] = np.nan
        errors: list[tuple[str, str] | None] = [None] * len(rows)
        if index == 0:
            metas.append({"source": FAILED})
            errors.append(("truncated", "ends early"))
        shard = Shard(index, tuple(inputs), f"{index:064d}")
        write_shard(folder, ShardRows(shard, metas, vectors.astype(np.float32), errors), record)


def _store(milvus_server: tuple[str, int], embeddings: ImageEmbeddings) -> MilvusImageStore:
    host, port = milvus_server
    name = f"imp{uuid.uuid4().hex[:10]}"
    return MilvusImageStore.http(host, port, embeddings, collection_name=name)


def test_import_files_hold_the_rows_a_load_would_write(
    milvus_server: tuple[str, int], embeddings: ImageEmbeddings, tmp_path: Path
) -> None:
    _write_shards(tmp_path / "shards", embeddings)
    store = _store(milvus_server, embeddings)
    try:
        files = write_import_files(store, tmp_path / "shards", tmp_path / "out", rows_per_file=3)
    finally:
        store.close()
    ids = {k: content_id(_sha(k), embeddings.model_id) for k in KEYS}
    assert [Path(p).name for p in files.paths] == ["part-000000.parquet", "part-000001.parquet"]
    assert files.keys == []  # a local folder: upload it into the server's bucket first
    tables = [pq.read_table(p) for p in files.paths]
    assert all(t.schema.remove_metadata() == import_schema() for t in tables)
    assert [t.num_rows for t in tables] == [3, 2]
    rows = [r for t in tables for r in t.to_pylist()]
    assert [r["id"] for r in rows] == [ids[k] for k in KEYS] == files.result.added
    assert files.rows == 5 and files.rows_read == 8 and files.shards == 2
    dim = int(embeddings.dim)
    for row, key in zip(rows, KEYS, strict=True):
        expected = _vector(key, dim) / np.linalg.norm(_vector(key, dim))
        np.testing.assert_allclose(row["vector"], expected, rtol=1e-6, atol=1e-7)
    first = json.loads(rows[0]["metadata"])
    assert first["sources"] == ["/p/a0.jpg", "/p/a3.jpg"] and first["sha256"] == _sha("k0")
    assert rows[0]["page_content"] == "/p/a0.jpg"
    # b0 repeats a1, written from the first shard: its record gains b0 after the import
    assert files.new_paths == {ids["k1"]: ["/p/b0.jpg"]}
    assert files.result.duplicates == {"/p/a3.jpg": "/p/a0.jpg", "/p/b0.jpg": "/p/a1.jpg"}
    assert [(e.source, e.code) for e in files.result.failures] == [(FAILED, "truncated")]


def test_a_damaged_or_foreign_shard_is_refused_and_nothing_is_written(
    milvus_server: tuple[str, int],
    embeddings: ImageEmbeddings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _write_shards(tmp_path / "bad", embeddings, nan_at=1)
    store = _store(milvus_server, embeddings)
    try:
        with pytest.raises(StoreError, match=r"shard-000001.parquet: row 1, column 'vector'"):
            write_import_files(store, tmp_path / "bad", tmp_path / "out")
        assert not list((tmp_path / "out").glob("*.parquet"))
        _write_shards(tmp_path / "foreign", embeddings, extra_dim=3)  # vectors of another dim
        with pytest.raises(ModelMismatchError, match=r"dim"):
            write_import_files(store, tmp_path / "foreign", tmp_path / "out")
        assert not list((tmp_path / "out").glob("*.parquet"))
        # object storage on a loopback endpoint: refused unless trusted (the package's policy)
        _write_shards(tmp_path / "good", embeddings)
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        with pytest.raises(StoreError, match=r"blocked_url.*--trusted-endpoint"):
            write_import_files(store, tmp_path / "good", "s3://a-bucket/imgemb-import")
    finally:
        store.close()


class _ImportingServer(ThreadingHTTPServer):
    """The import-job REST API in front of a Milvus Lite server: a job inserts its files'
    rows with pymilvus (field by field, as Milvus maps Parquet columns to fields)."""

    def __init__(self, bucket: Path, milvus_uri: str) -> None:
        super().__init__(("127.0.0.1", 0), _ImportHandler)
        self.bucket = bucket
        self.milvus_uri = milvus_uri
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []

    def run_job(self, body: dict[str, Any]) -> dict[str, Any]:
        from pymilvus import MilvusClient

        self.created.append(body)
        job = str(len(self.jobs) + 1)
        client = MilvusClient(uri=self.milvus_uri, timeout=30)
        rows = 0
        try:
            for (key,) in body["files"]:
                for row in pq.read_table(self.bucket / key).to_pylist():
                    row["metadata"] = json.loads(row["metadata"])
                    client.insert(body["collectionName"], [row])
                    rows += 1
        finally:
            client.close()
        self.jobs[job] = {
            "jobId": job,
            "state": "Completed",
            "progress": 100,
            "importedRows": rows,
            "totalRows": rows,
            "reason": "",
            "details": [],
        }
        return {"code": 0, "data": {"jobId": job}}


class _ImportHandler(BaseHTTPRequestHandler):
    server: _ImportingServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        action = self.path.removeprefix(IMPORT_API + "/")
        if action == "create":
            answer = self.server.run_job(body)
        elif action == "get_progress":
            answer = {"code": 0, "data": self.server.jobs[body["jobId"]]}
        else:
            answer = {"code": 0, "data": {"records": list(self.server.jobs.values())}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def importing_server(milvus_server: tuple[str, int], tmp_path: Path) -> Iterator[_ImportingServer]:
    host, port = milvus_server
    server = _ImportingServer(tmp_path / "minio" / "a-bucket", f"http://{host}:{port}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_an_import_job_leaves_the_store_as_a_load_would(
    milvus_server: tuple[str, int],
    embeddings: ImageEmbeddings,
    importing_server: _ImportingServer,
    tmp_path: Path,
) -> None:
    _write_shards(tmp_path / "shards", embeddings)
    minio = pafs.SubTreeFileSystem(str(tmp_path / "minio"), pafs.LocalFileSystem())
    url = f"http://127.0.0.1:{importing_server.server_address[1]}"
    store = _store(milvus_server, embeddings)
    try:
        report = import_shards(
            store,
            tmp_path / "shards",
            "a-bucket/imgemb-import",
            url=url,
            filesystem=minio,
            rows_per_file=3,
            poll_s=0.01,
        )
        assert report.files.keys == [
            "imgemb-import/part-000000.parquet",
            "imgemb-import/part-000001.parquet",
        ]
        assert importing_server.created[0]["files"] == [[k] for k in report.files.keys]
        assert importing_server.created[0]["collectionName"] == store.collection_name
        assert report.imported_rows == 5 and len(store) == 5 and report.relinked == 1
        ids = {k: content_id(_sha(k), embeddings.model_id) for k in KEYS}
        (a1,) = store.get_by_ids([ids["k1"]])
        assert a1.metadata["sources"] == ["/p/a1.jpg", "/p/b0.jpg"]
        query = _vector("k2", int(embeddings.dim))
        (hit, score), *_ = store.similarity_search_with_score_by_vector(query.tolist(), k=2)
        assert hit.id == ids["k2"] and score > 0.99
        again = import_shards(
            store,
            tmp_path / "shards",
            "a-bucket/imgemb-import2",
            url=url,
            filesystem=minio,
            poll_s=0.01,
        )
        assert again.files.rows == 0 and again.jobs == [] and len(importing_server.created) == 1
        assert set(again.files.result.skipped) == set(ids.values())
        assert len(store) == 5
    finally:
        store.drop()
        store.close()


def test_the_cli_says_milvus_lite_has_no_import_jobs_and_writes_nothing(
    milvus_server: tuple[str, int],
    embeddings: ImageEmbeddings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _write_shards(tmp_path / "shards", embeddings)
    host, port = milvus_server
    name = f"cli{uuid.uuid4().hex[:10]}"
    spec = f"milvus+http://{host}:{port}/{name}"
    code = main(
        [
            "load",
            str(tmp_path / "shards"),
            "--store",
            spec,
            "--milvus-import",
            "s3://a-bucket/imgemb-import",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 5, err
    assert "Milvus Lite" in err and "has no import jobs" in err
    store = MilvusImageStore.http(host, port, None, collection_name=name)
    try:
        assert len(store) == 0
    finally:
        store.drop()
        store.close()
