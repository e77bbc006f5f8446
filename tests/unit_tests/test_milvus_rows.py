"""Rows of Milvus ``upsert`` requests: few, large, bounded in bytes and rows, nothing lost
(issue 26: one round trip per 256 rows made bulk loads slower than raw pymilvus)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.vectorstores.milvus import _rows


def _docs(n: int, text: str = "") -> tuple[list[str], np.ndarray, list[Document]]:
    ids = [f"id{i}" for i in range(n)]
    vectors = np.arange(n * 4, dtype=np.float32).reshape(n, 4) + 1
    docs = [Document(page_content=text or f"/p/{i}.jpg", metadata={"n": i}) for i in range(n)]
    return ids, vectors, docs


def test_requests_hold_up_to_bulk_write_rows_and_keep_every_row_in_order() -> None:
    ids, vectors, docs = _docs(_rows.BULK_WRITE_ROWS * 2 + 7)
    requests = list(_rows.upsert_batches(ids, vectors, docs))
    assert [len(r) for r in requests] == [_rows.BULK_WRITE_ROWS, _rows.BULK_WRITE_ROWS, 7]
    rows = [row for request in requests for row in request]
    assert [r["id"] for r in rows] == ids
    assert rows[-1]["vector"] == vectors[-1].tolist()
    assert json.loads(rows[123]["metadata"]) == {"n": 123}
    assert rows[123]["page_content"] == "/p/123.jpg"


def test_requests_stay_under_the_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rows, "UPSERT_BYTES", 10_000)
    ids, vectors, docs = _docs(50, text="x" * 1000)  # ~1.1 KB a row: 9 rows a request
    requests = list(_rows.upsert_batches(ids, vectors, docs))
    assert [len(r) for r in requests] == [9] * 5 + [5]
    assert [r["id"] for req in requests for r in req] == ids


def test_a_row_over_the_budget_is_a_request_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rows, "UPSERT_BYTES", 100)
    ids, vectors, docs = _docs(3, text="y" * 500)
    assert [len(r) for r in _rows.upsert_batches(ids, vectors, docs)] == [1, 1, 1]


def test_metadata_goes_as_plain_json_text() -> None:
    from pathlib import Path

    doc = Document(page_content="a.jpg", metadata={"path": Path("a.jpg"), "w": 3, 4: "é"})
    (request,) = _rows.upsert_batches(["a"], np.ones((1, 2), np.float32), [doc])
    # text: pymilvus validates it with orjson and sends it as it is (a dict it walks in Python)
    assert isinstance(request[0]["metadata"], str)
    assert json.loads(request[0]["metadata"]) == {"path": "a.jpg", "w": 3, "4": "é"}


def test_metadata_that_is_not_strict_json_goes_as_a_dict_as_before() -> None:
    doc = Document(page_content="a.jpg", metadata={"score": float("nan"), "w": 3})
    (request,) = _rows.upsert_batches(["a"], np.ones((1, 2), np.float32), [doc])
    meta = request[0]["metadata"]
    assert isinstance(meta, dict) and meta["w"] == 3 and meta["score"] != meta["score"]
