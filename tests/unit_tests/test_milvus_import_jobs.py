"""Milvus import jobs (issue 26, "Milvus at index speed"): the import-file rows and the
REST client, against a fake server on 127.0.0.1 that answers the documented request and
response shapes of ``/v2/vectordb/jobs/import/{create,get_progress,list}``."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.errors import MilvusImportError, StoreError
from langchain_image_embeddings.vectorstores.milvus._import import (
    IMPORT_API,
    MilvusImportJobs,
    import_schema,
    import_table,
)

#: What a Milvus Lite gRPC port sent back to an HTTP/1.1 POST (measured with milvus-lite 3.x):
#: an HTTP/2 SETTINGS frame.
HTTP2_SETTINGS = bytes.fromhex(
    "000018040000000000000400400000000500400000000600004000fe03000000010000040800000000003f0001"
)


class FakeMilvus(ThreadingHTTPServer):
    """The import-job REST API of a Milvus server, as documented, with a scripted outcome."""

    def __init__(self, outcome: str = "complete", rows: int = 10) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.outcome = outcome  # complete | fail | refuse | hang | slow
        self.rows = rows
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.polls = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client that timed out closed its end: the late answer's broken pipe

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action == "list":
            return {"code": 0, "data": {"records": [{"jobId": "41", "state": "Completed"}]}}
        if action == "create":
            if self.outcome == "refuse":
                return {"code": 1100, "message": "collection not found[collection=nope]"}
            return {"code": 0, "data": {"jobId": "448707763884413158"}}
        if action == "get_progress":
            self.polls += 1
            if self.outcome == "slow":
                time.sleep(1.5)
            file = {"fileName": "imports/part-000000.parquet", "fileSize": 1000}
            if self.outcome == "fail":
                reason = "the field 'vector' of row 3 has dim 4, expected 8"
                return {
                    "code": 0,
                    "data": {
                        "jobId": body["jobId"],
                        "state": "Failed",
                        "progress": 0,
                        "reason": "",
                        "importedRows": 0,
                        "totalRows": self.rows,
                        "details": [{**file, "state": "Failed", "reason": reason}],
                    },
                }
            done = self.outcome == "complete" and self.polls >= 2
            return {
                "code": 0,
                "data": {
                    "jobId": body["jobId"],
                    "collectionName": "photos",
                    "state": "Completed" if done else "Importing",
                    "progress": 100 if done else 50,
                    "importedRows": self.rows if done else 0,
                    "totalRows": self.rows,
                    "reason": "",
                    "details": [{**file, "state": "Completed" if done else "Importing"}],
                },
            }
        return {"code": 404, "message": f"no action {action}"}


class _Handler(BaseHTTPRequestHandler):
    server: FakeMilvus

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        action = self.path.removeprefix(IMPORT_API + "/")
        self.server.requests.append((self.path, dict(self.headers), body))
        data = json.dumps(self.server.answer(action, body)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[FakeMilvus]:
    server = FakeMilvus()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_create_sends_the_documented_request_and_returns_the_job_id(fake: FakeMilvus) -> None:
    jobs = MilvusImportJobs(fake.url, token="root:Milvus", db_name="imgs")
    job = jobs.create("photos", ["imports/part-000000.parquet", "imports/part-000001.parquet"])
    assert job == "448707763884413158"
    path, headers, body = fake.requests[-1]
    assert path == "/v2/vectordb/jobs/import/create"
    assert headers["Authorization"] == "Bearer root:Milvus"
    assert body == {
        "dbName": "imgs",
        "collectionName": "photos",
        "files": [["imports/part-000000.parquet"], ["imports/part-000001.parquet"]],
    }


def test_wait_polls_until_the_job_completes_and_reports_its_rows(fake: FakeMilvus) -> None:
    jobs = MilvusImportJobs(fake.url)
    seen: list[str] = []
    state = jobs.wait("7", poll_s=0.01, on_progress=lambda p: seen.append(p.state))
    assert seen == ["Importing", "Completed"]
    assert (state.job_id, state.imported_rows, state.total_rows) == ("7", 10, 10)
    assert state.files[0].name == "imports/part-000000.parquet"
    assert fake.requests[-1][0] == "/v2/vectordb/jobs/import/get_progress"
    assert fake.requests[-1][2] == {"jobId": "7"}
    assert jobs.list("photos") == [{"jobId": "41", "state": "Completed"}]


def test_a_failed_job_raises_with_its_id_file_and_the_servers_reason(fake: FakeMilvus) -> None:
    fake.outcome = "fail"
    with pytest.raises(MilvusImportError) as caught:
        MilvusImportJobs(fake.url).wait("9", poll_s=0.01)
    err = caught.value
    assert (err.job_id, err.file) == ("9", "imports/part-000000.parquet")
    assert "has dim 4, expected 8" in err.reason
    assert "job 9 failed" in str(err) and "part-000000.parquet" in str(err)
    assert isinstance(err, StoreError)  # `imgemb` exits 5 on it like on any store error


def test_a_refused_request_carries_the_servers_message(fake: FakeMilvus) -> None:
    fake.outcome = "refuse"
    with pytest.raises(MilvusImportError, match=r"code 1100.*collection not found") as caught:
        MilvusImportJobs(fake.url).create("nope", ["a.parquet"])
    assert caught.value.job_id is None


def test_a_job_that_does_not_end_in_time_raises_a_timeout(fake: FakeMilvus) -> None:
    fake.outcome = "hang"
    with pytest.raises(MilvusImportError, match=r"did not finish within 0.2 s") as caught:
        MilvusImportJobs(fake.url).wait("5", timeout_s=0.2, poll_s=0.02)
    assert (caught.value.job_id, caught.value.reason) == ("5", "timeout")
    assert fake.polls >= 2


def test_a_request_that_gets_no_answer_times_out(fake: FakeMilvus) -> None:
    fake.outcome = "slow"
    with pytest.raises(MilvusImportError, match=r"no answer within 0.3 s") as caught:
        MilvusImportJobs(fake.url, timeout=0.3).progress("3")
    assert caught.value.job_id == "3"


def _lite_hint_from(serve: Callable[[socket.socket], None]) -> None:
    """``serve`` answers one connection on a loopback port; listing import jobs there must
    raise the error that names Milvus Lite."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def accept() -> None:
        conn, _ = listener.accept()
        serve(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with pytest.raises(MilvusImportError, match=r"Milvus Lite .*has no import jobs"):
            MilvusImportJobs(url, timeout=5).list("photos")
    finally:
        thread.join(5)
        listener.close()


def test_a_grpc_only_port_like_milvus_lite_is_named_not_waited_on() -> None:
    def answer_in_http2(conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:  # the whole request, then the answer:
                request += conn.recv(65536)  # closing on unread bytes would reset instead
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(HTTP2_SETTINGS)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):  # until the client has closed its side
                pass

    _lite_hint_from(answer_in_http2)


def test_a_reset_connection_names_milvus_lite_too() -> None:
    def reset_at_once(conn: socket.socket) -> None:
        conn.recv(16)  # unread bytes left behind: closing now sends a reset
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    _lite_hint_from(reset_at_once)


def test_nothing_listening_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MilvusImportError, match=r"cannot reach the Milvus REST API"):
        MilvusImportJobs(f"http://127.0.0.1:{port}", timeout=2).list()


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http"):
        MilvusImportJobs("file:///etc/passwd")


def test_import_rows_are_the_collections_fields_with_unit_vectors_and_json_metadata() -> None:
    docs = [Document("a.jpg", metadata={"sources": ["a.jpg", "b.jpg"], "w": 3}), Document("c.jpg")]
    table = import_table(["i1", "i2"], np.array([[3.0, 4.0], [0.0, 2.0]]), docs, 2)
    assert table.schema == import_schema()
    assert table.column("id").to_pylist() == ["i1", "i2"]
    np.testing.assert_allclose(table.column("vector").to_pylist(), [[0.6, 0.8], [0.0, 1.0]])
    assert table.column("page_content").to_pylist() == ["a.jpg", "c.jpg"]
    assert json.loads(table.column("metadata")[0].as_py()) == docs[0].metadata


@pytest.mark.parametrize(
    ("ids", "vectors", "text", "problem"),
    [
        (["a"], np.array([[np.nan, 1.0]]), "a.jpg", r"NaN/inf"),
        (["a"], np.array([[0.0, 0.0]]), "a.jpg", r"zero norm"),
        (["a"], np.ones((1, 3)), "a.jpg", r"dimension 2"),
        (["x" * 600], np.ones((1, 2)), "a.jpg", r"longer than 512 bytes"),
        (["a"], np.ones((1, 2)), "data:" + "y" * 70_000, r"longer than 65535 bytes"),
    ],
)
def test_rows_the_store_would_refuse_are_refused_by_name(
    ids: list[str], vectors: np.ndarray, text: str, problem: str
) -> None:
    with pytest.raises(StoreError, match=problem):
        import_table(ids, vectors, [Document(text)], 2)


def test_the_cli_refuses_milvus_import_for_another_store(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["load", str(tmp_path), "--store", f"faiss:{tmp_path}/i", "--milvus-import", "s3://b/x"]
    )
    assert code == 2
    assert "--milvus-import needs a Milvus store" in capsys.readouterr().err
