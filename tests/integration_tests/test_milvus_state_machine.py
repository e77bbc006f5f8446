"""Generated sequences of store operations on Milvus Lite, checked against a plain dict.

The machine of ``tests/unit_tests/test_store_state_machine.py`` (upsert, delete, metadata
updates, save, reopen, searches by vector; after every step the same ids, page contents and
metadata as the dict) drives a :class:`MilvusImageStore` on the session's ``milvus-lite
server`` (127.0.0.1, stopped by PID). Milvus writes through, so "save" is ``persist`` (a
no-op) and "reopen" is close + reconnect to the same collection. Its index is HNSW
(approximate): searches are checked for min(k, n) distinct live hits, each with the score of
its stored vector, in non-increasing order, and never a deleted id, not for the exact top-k.

Bounded (``MAX_EXAMPLES`` x ``STEPS``, one fresh collection per example) and derandomized.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis.stateful import run_state_machine_as_test

from langchain_image_embeddings.vectorstores import MilvusImageStore
from tests.unit_tests.test_store_state_machine import StoreMachine, bounded_settings

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
STEPS = 15


class MilvusMachine(StoreMachine):
    """The dict machine on one Milvus collection of its own."""

    kind = "milvus"
    exact = False
    #: The server (set by the test on a subclass: hypothesis builds the machine with no args).
    host = ""
    port = 0

    def __init__(self) -> None:
        self.collection = f"sm{uuid.uuid4().hex[:12]}"
        super().__init__()

    def _open(self) -> MilvusImageStore:
        return MilvusImageStore.http(
            self.host,
            self.port,
            self.embeddings,
            collection_name=self.collection,
            create=not hasattr(self, "store"),  # a reopen finds the collection it wrote
        )

    def teardown(self) -> None:
        try:
            assert isinstance(self.store, MilvusImageStore)
            self.store.drop()
        finally:
            super().teardown()


def test_milvus_store_against_a_dict(milvus_server: tuple[str, int]) -> None:
    class OnTheSessionServer(MilvusMachine):
        host, port = milvus_server

    run_state_machine_as_test(OnTheSessionServer, settings=bounded_settings(MAX_EXAMPLES, STEPS))
