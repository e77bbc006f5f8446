"""Generated sequences of store operations checked against a plain dict (hypothesis stateful).

Each run drives one store through a random sequence of ``upsert_vectors`` (ids, vectors,
documents, metadata), ``delete``, ``update_metadata``, ``persist``, close + reopen and exact
searches by vector, and after every step compares it with a dict
``{id: (vector, text, metadata)}``: the same ids, page contents and metadata
(``get_by_ids``, ``records``, ``len``), and for searches the same top-k (ties are compared as score multisets: every returned record scores
what the model says, and the returned scores are the k best). A FAISS store (flat, exact)
and an embedded Chroma store run the same machine.

A FAISS store with an approximate index (HNSW, built from the first row on: the 1,000-row
threshold is lowered for the test, and a ``build_index(force=True)`` rule rebuilds it) runs it
too: its records must equal the dict exactly, but an approximate index does not promise the
exact top-k, so its searches are checked for min(k, n) distinct live hits, each with the score
of its stored vector, in non-increasing order, and never a deleted id. (Milvus Lite runs the
same machine in ``tests/integration_tests/test_milvus_state_machine.py``.)

Bounded (``max_examples`` x ``stateful_step_count``) and derandomized for CI.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_image_embeddings.vectorstores._records import relevance_from_cosine
from langchain_image_embeddings.vectorstores.base import ImageVectorStore

DIM = 8
#: Generated sequences per store kind, and operations per sequence.
MAX_EXAMPLES = 60
STEPS = 20
#: A small id pool, so writes replace, deletes hit and updates find existing records.
IDS = ["a", "b", "c", "d", "e", "f", "x/y", "ü 1"]
SCORE_TOL = 1e-5

ids = st.sampled_from(IDS)
vectors = st.lists(st.integers(-3, 3), min_size=DIM, max_size=DIM).filter(any)
texts = st.text(max_size=12)
meta_keys = st.sampled_from(["format", "width", "tag", "score", "ok", "source"])
meta_values = st.one_of(
    st.text(max_size=10),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
)
metadatas = st.dictionaries(meta_keys, meta_values, max_size=4)
Record = tuple[np.ndarray, str, dict[str, Any]]


def batches(*, min_size: int, max_size: int) -> st.SearchStrategy[Any]:
    """Records to write in one call: (id, vector, page content, metadata), unique ids."""
    return st.lists(
        st.tuples(ids, vectors, texts, metadatas),
        min_size=min_size,
        max_size=max_size,
        unique_by=lambda t: t[0],
    )


def same_value(got: Any, want: Any) -> bool:
    """Equal values of the same type; floats to 1e-12 relative (embedded Chroma returned
    ``1.8731204638296515e-28`` for a stored ``1.8731204638296517e-28``: the last bit)."""
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return math.isclose(got, want, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same_value(got[k], want[k]) for k in want)
    if isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(map(same_value, got, want))
    return bool(got == want)


def _unit(vector: list[int] | np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    return v / np.linalg.norm(v)


class StoreMachine(RuleBasedStateMachine):
    """One store and the dict it must agree with."""

    kind = "faiss"
    #: Whether searches must return the exact top-k (false: an approximate index).
    exact = True

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix=f"imgemb-sm-{self.kind}-"))
        self.embeddings = DeterministicFakeEmbedding(size=DIM)
        self.store = self._open()
        self.model: dict[str, Record] = {}
        #: Ids deleted and not written since, with their last vector: never to come back.
        self.deleted: dict[str, np.ndarray] = {}

    def _open(self) -> ImageVectorStore:
        from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore

        if self.kind == "faiss":
            return FAISSImageStore(self.embeddings, self.folder / "faiss", index="flat")
        if self.kind == "faiss-hnsw":
            return FAISSImageStore(self.embeddings, self.folder / "faiss", index="hnsw")
        return ChromaImageStore.persistent(self.folder / "chroma", self.embeddings)

    def teardown(self) -> None:
        try:
            self.store.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- operations ----------------------------------------------------------------------
    @initialize(batch=batches(min_size=2, max_size=6))
    def seed(self, batch: list[tuple[str, list[int], str, dict[str, Any]]]) -> None:
        self.add(batch)

    @rule(batch=batches(min_size=1, max_size=4))
    def add(self, batch: list[tuple[str, list[int], str, dict[str, Any]]]) -> None:
        matrix = np.asarray([v for _, v, _, _ in batch], dtype=np.float32)
        docs = [Document(page_content=text, metadata=dict(meta)) for _, _, text, meta in batch]
        self.store.upsert_vectors([i for i, _, _, _ in batch], matrix, docs)
        for record_id, vector, text, meta in batch:
            self.model[record_id] = (_unit(vector), text, dict(meta))
            self.deleted.pop(record_id, None)

    @rule(record_id=ids, vector=vectors, text=texts, meta=metadatas)
    def add_one(self, record_id: str, vector: list[int], text: str, meta: dict[str, Any]) -> None:
        self.add([(record_id, vector, text, meta)])

    @rule(doomed=st.lists(ids, max_size=4))
    def delete(self, doomed: list[str]) -> None:
        assert self.store.delete(doomed) is True
        for record_id in doomed:
            gone = self.model.pop(record_id, None)
            if gone is not None:
                self.deleted.pop(record_id, None)
                self.deleted[record_id] = gone[0]  # the latest deletion last

    @precondition(lambda self: self.model)
    @rule(
        pairs=st.lists(st.tuples(ids, metadatas), min_size=1, max_size=3, unique_by=lambda t: t[0])
    )
    def update_metadata(self, pairs: list[tuple[str, dict[str, Any]]]) -> None:
        self.store.update_metadata([i for i, _ in pairs], [dict(m) for _, m in pairs])
        for record_id, meta in pairs:
            if record_id in self.model:
                vector, text, _ = self.model[record_id]
                self.model[record_id] = (vector, text, dict(meta))

    @rule()
    def save(self) -> None:
        """Save and keep writing (FAISS: a segment per save, deletions, compaction)."""
        self.store.persist()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self._open()

    @rule(query=vectors, k=st.integers(1, len(IDS) + 1))
    def search(self, query: list[int], k: int) -> None:
        self._search(query, k)

    def _search(self, query: list[int] | np.ndarray, k: int) -> None:
        hits = self.store.similarity_search_with_score_by_vector([float(x) for x in query], k=k)
        self._searched()
        q = _unit(query)
        expected = {
            i: relevance_from_cosine(float(q @ vector)) for i, (vector, _, _) in self.model.items()
        }
        assert len(hits) == min(k, len(self.model)), (len(hits), k, len(self.model))
        got_ids = [doc.id for doc, _ in hits]
        assert len(set(got_ids)) == len(got_ids), got_ids
        for doc, score in hits:
            assert doc.id not in self.deleted, f"deleted id {doc.id!r} came back"
            assert doc.id in self.model, doc.id
            _, text, meta = self.model[str(doc.id)]
            assert doc.page_content == text, (doc, text)
            assert same_value(doc.metadata, meta), (doc, meta)
            assert math.isclose(score, expected[str(doc.id)], abs_tol=SCORE_TOL), (
                doc.id,
                score,
                expected[str(doc.id)],
            )
        scores = [s for _, s in hits]
        assert all(a >= b - SCORE_TOL for a, b in itertools.pairwise(scores)), scores
        if self.exact:
            best = sorted(expected.values(), reverse=True)[: len(hits)]
            assert np.allclose(sorted(scores, reverse=True), best, atol=SCORE_TOL), (scores, best)

    def _searched(self) -> None:
        """Called after each search (the approximate machine counts index-backed ones)."""

    # -- after every step ----------------------------------------------------------------
    @invariant()
    def deleted_stay_deleted(self) -> None:
        """Search with the vector of the latest deleted id: it (nor any deleted id) must not
        come back, whatever the index."""
        if self.deleted:
            self._search(next(reversed(self.deleted.values())), len(IDS) + 1)

    @invariant()
    def same_records(self) -> None:
        assert len(self.store) == len(self.model)
        docs = self.store.get_by_ids(IDS)
        got = {str(d.id): (d.page_content, d.metadata) for d in docs}
        want = {i: (text, meta) for i, (_, text, meta) in self.model.items()}
        assert same_value(got, want), (got, want)
        records = self.store.records()
        assert same_value(records, {i: meta for i, (_, _, meta) in self.model.items()}), records


def bounded_settings(max_examples: int, steps: int) -> settings:
    """Hypothesis settings of every store machine: bounded, derandomized (stable in CI)."""
    return settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


_SETTINGS = bounded_settings(MAX_EXAMPLES, STEPS)


class FAISSMachine(StoreMachine):
    kind = "faiss"


class ChromaMachine(StoreMachine):
    kind = "chroma"


TestFAISSStoreAgainstADict = FAISSMachine.TestCase
TestFAISSStoreAgainstADict.settings = _SETTINGS


@pytest.fixture(autouse=True)
def _backend_installed(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("chromadb" if "Chroma" in request.node.nodeid else "faiss")


TestChromaStoreAgainstADict = ChromaMachine.TestCase
TestChromaStoreAgainstADict.settings = _SETTINGS


class FAISSApproximateMachine(StoreMachine):
    """FAISS with an HNSW index: built at every save (threshold lowered to one row) and by a
    forced ``build_index``, grown by writes in between, reloaded on reopen."""

    kind = "faiss-hnsw"
    exact = False
    #: Searches answered while an approximate index was built (the test asserts some were).
    ann_searches = 0

    @rule()
    def build_index(self) -> None:
        from langchain_image_embeddings.vectorstores import FAISSImageStore

        assert isinstance(self.store, FAISSImageStore)
        self.store.build_index(force=True)
        assert self.store.index_info["kind"] == ("hnsw" if self.model else "flat")

    def _searched(self) -> None:
        from langchain_image_embeddings.vectorstores import FAISSImageStore

        assert isinstance(self.store, FAISSImageStore)
        if self.store.index_info["kind"] == "hnsw":
            FAISSApproximateMachine.ann_searches += 1


@pytest.fixture
def _ann_from_one_row(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Approximate indexes from the first row on (not from 1,000), and proof they were used."""
    from langchain_image_embeddings.vectorstores.faiss import _index

    monkeypatch.setattr(_index, "MIN_ANN_ROWS", 1)
    FAISSApproximateMachine.ann_searches = 0
    yield
    assert FAISSApproximateMachine.ann_searches > 0, "no search went through the HNSW index"


TestFAISSApproximateStoreAgainstADict = pytest.mark.usefixtures("_ann_from_one_row")(
    FAISSApproximateMachine.TestCase
)
TestFAISSApproximateStoreAgainstADict.settings = _SETTINGS


def test_hnsw_build_over_one_live_row(_ann_from_one_row: None) -> None:
    """Regression (found by the machine above): tuning an HNSW index over one live row (or
    none) divided by zero: no neighbour is left to measure recall@k on once a query's own row
    is held out."""
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    machine = FAISSApproximateMachine()
    try:
        machine.seed([("a", [0] * 7 + [1], "", {}), ("b", [0] * 7 + [1], "", {})])
        machine.same_records()
        machine.delete(["a"])
        machine.same_records()
        machine.build_index()
        machine.same_records()
        machine.search([0] * 7 + [1], 2)
        machine.delete(["b"])
        store = machine.store
        assert isinstance(store, FAISSImageStore)
        assert store.tune()["recall"] == 1.0  # an index over no live row
        machine.same_records()
    finally:
        machine.teardown()


def test_tune_after_deleting_down_to_one_row(tmp_path: Path) -> None:
    """The same through the public API at the real threshold: an index built over 1,000 rows,
    all but one deleted, then :meth:`FAISSImageStore.tune` (no save in between)."""
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    rng = np.random.default_rng(0)
    store = FAISSImageStore(DeterministicFakeEmbedding(size=DIM), tmp_path / "s", index="hnsw")
    n = 1_000
    store.upsert_vectors(
        [str(i) for i in range(n)],
        rng.standard_normal((n, DIM)).astype(np.float32),
        [Document(page_content=str(i)) for i in range(n)],
    )
    assert store.build_index() and store.index_info["kind"] == "hnsw"
    store.delete([str(i) for i in range(1, n)])
    info = store.tune()
    assert info["kind"] == "hnsw" and info["recall"] == 1.0
    hits = store.similarity_search_with_score_by_vector([1.0] * DIM, k=3)
    assert [d.id for d, _ in hits] == ["0"]
    store.delete(["0"])
    assert store.tune()["recall"] == 1.0
    assert store.similarity_search_with_score_by_vector([1.0] * DIM, k=3) == []
    store.close()
