"""Bulk writes into the Milvus store on a Milvus Lite server (issue 26): large requests,
one flush before the first search, and every row found afterwards."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_image_embeddings.vectorstores import MilvusImageStore
from langchain_image_embeddings.vectorstores._records import AddResult, PendingAdd
from langchain_image_embeddings.vectorstores.milvus._rows import BULK_WRITE_ROWS

pytestmark = pytest.mark.integration

ROWS = 2 * BULK_WRITE_ROWS + 500
DIM = 8


class _Counting:
    """Wraps a ``MilvusClient``: records the rows of every upsert and each flush."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.upserts: list[int] = []
        self.flushes = 0

    def upsert(self, *args: Any, **kwargs: Any) -> Any:
        self.upserts.append(len(kwargs["data"]))
        return self._client.upsert(*args, **kwargs)

    def flush(self, *args: Any, **kwargs: Any) -> Any:
        self.flushes += 1
        return self._client.flush(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.slow
def test_a_bulk_write_is_few_large_requests_and_every_row_is_found(
    own_milvus_server: Any,
) -> None:
    # a server of its own, stopped after the test: Milvus Lite goes on sealing and indexing
    # 20,500 rows in the background, which loaded the shared session server's CPU during
    # the browser tests that run next
    from pymilvus import MilvusClient

    host, port = own_milvus_server.host, own_milvus_server.port
    client = _Counting(MilvusClient(uri=f"http://{host}:{port}", timeout=60))
    store = MilvusImageStore(
        DeterministicFakeEmbedding(size=DIM),
        client=client,
        collection_name=f"t{uuid.uuid4().hex[:12]}",
    )
    try:
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((ROWS, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"r{n}" for n in range(ROWS)]
        docs = [Document(page_content=f"/p/{n}.jpg", metadata={"n": n}) for n in range(ROWS)]
        result = store.commit_add(PendingAdd(ids, vectors, docs, {}, {}, AddResult()))
        assert result.added == ids
        # one request per BULK_WRITE_ROWS rows (it was one per 256 rows): 3, not 80
        assert client.upserts == [BULK_WRITE_ROWS, BULK_WRITE_ROWS, 500]
        assert client.flushes == 0

        sample = rng.choice(ROWS, 300, replace=False)
        found = store.similarity_search_with_score_by_vectors(vectors[sample], k=1)
        assert client.flushes == 1  # the first search after the bulk write flushed, once
        assert [hits[0][0].id for hits in found] == [ids[n] for n in sample]
        assert [hits[0][0].metadata for hits in found] == [{"n": int(n)} for n in sample]
        store.similarity_search_by_vector(vectors[0].tolist(), k=3)
        assert client.flushes == 1  # nothing written since: no second flush
        assert len(store) == ROWS
        assert {i for i in store.records()} == set(ids)
    finally:
        store.drop()
        client.close()
