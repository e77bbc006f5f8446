"""The multi-vector store: MaxSim search equals brute force, saves, ids, deletes, filters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from langchain_core.documents import Document
from PIL import Image

from langchain_image_embeddings.errors import ImageLoadError, ModelMismatchError, StoreError
from langchain_image_embeddings.vectorstores import MultiVectorImageStore
from langchain_image_embeddings.vectorstores.multivector import (
    maxsim,
    pool_tokens,
    relevance_from_maxsim,
)

DIM = 16


def clustered_pages(
    n_pages: int, seed: int = 0, dim: int = DIM, topics: int = 12
) -> list[np.ndarray]:
    """Pages whose patches gather around a few topic centres each (as real pages do)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim))
    pages = []
    for _ in range(n_pages):
        picked = centres[rng.choice(topics, size=3, replace=False)]
        n = int(rng.integers(8, 40))
        rows = picked[rng.integers(0, 3, size=n)] + 0.6 * rng.normal(size=(n, dim))
        pages.append((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32))
    return pages


def queries_for(pages: Sequence[np.ndarray], n: int, seed: int = 1) -> list[np.ndarray]:
    """Queries made of noisy copies of a few patches of one page each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        page = pages[int(rng.integers(len(pages)))]
        rows = page[rng.integers(0, len(page), size=6)] + 0.3 * rng.normal(size=(6, page.shape[1]))
        out.append(rows.astype(np.float32))
    return out


def brute_force(query: np.ndarray, pages: Sequence[np.ndarray]) -> np.ndarray:
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    # The store keeps float16 rows: score what it stores.
    return np.array([maxsim(q, p.astype(np.float16).astype(np.float32)) for p in pages])


def filled(pages: Sequence[np.ndarray], **kwargs: object) -> MultiVectorImageStore:
    store = MultiVectorImageStore(None, **kwargs)  # type: ignore[arg-type]
    ids = [f"p{i}" for i in range(len(pages))]
    docs = [Document(page_content=f"page{i}.png", metadata={"n": i % 3}) for i in range(len(pages))]
    store.add_vectors(ids, pages, docs)
    return store


def test_exact_mode_equals_brute_force_maxsim() -> None:
    pages = clustered_pages(80)
    store = filled(pages, patch_index=None)
    for query in queries_for(pages, 10):
        truth = brute_force(query, pages)
        hits = store.search_by_tokens(query, k=10)
        expected = np.argsort(-truth, kind="stable")[:10]
        assert [d.id for d, _ in hits] == [f"p{i}" for i in expected]
        for (_, score), i in zip(hits, expected, strict=True):
            assert score == pytest.approx(relevance_from_maxsim(truth[i], len(query)), abs=1e-5)


def test_candidate_stage_with_every_patch_equals_brute_force() -> None:
    pages = clustered_pages(60, seed=3)
    rows = sum(len(p) for p in pages)
    store = filled(pages, token_k=rows)  # every patch retrieved: every page a candidate
    for query in queries_for(pages, 5, seed=4):
        truth = np.argsort(-brute_force(query, pages), kind="stable")[:5]
        assert [d.id for d, _ in store.search_by_tokens(query, k=5)] == [f"p{i}" for i in truth]


def test_default_candidate_stage_keeps_the_top_pages() -> None:
    pages = clustered_pages(300, seed=5)
    store = filled(pages, token_k=32)
    found = total = 0
    for query in queries_for(pages, 20, seed=6):
        truth = {f"p{i}" for i in np.argsort(-brute_force(query, pages))[:5]}
        found += len(truth & {d.id for d, _ in store.search_by_tokens(query, k=5)})
        total += 5
    assert found / total >= 0.95


def test_scores_are_relevance_in_unit_interval() -> None:
    assert relevance_from_maxsim(6.0, 6) == 1.0
    assert relevance_from_maxsim(-6.0, 6) == 0.0
    assert relevance_from_maxsim(0.0, 6) == 0.5
    assert relevance_from_maxsim(float("nan"), 6) == 0.0
    pages = clustered_pages(20)
    store = filled(pages)
    hits = store.search_by_tokens(-pages[0][:3], k=20)
    assert all(0.0 <= s <= 1.0 for _, s in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_filter_by_metadata_and_callable() -> None:
    pages = clustered_pages(30)
    store = filled(pages)
    query = pages[4][:5]
    hits = store.search_by_tokens(query, k=30, filter={"n": 1})
    assert hits and all(d.metadata["n"] == 1 for d, _ in hits)
    assert len(hits) == 10  # fewer candidates than k: every matching page scored
    hits = store.search_by_tokens(query, k=3, filter={"n": [0, 2]})
    assert all(d.metadata["n"] in (0, 2) for d, _ in hits)
    hits = store.search_by_tokens(query, k=3, filter=lambda m: m["n"] == 2)
    assert all(d.metadata["n"] == 2 for d, _ in hits)


def test_bad_pages_are_refused_naming_the_id() -> None:
    store = filled(clustered_pages(3))
    with pytest.raises(StoreError, match=r"'bad'.*dimension 5"):
        store.add_vectors(["bad"], [np.ones((3, 5), np.float32)], [Document(page_content="x")])
    with pytest.raises(StoreError, match=r"'nan'.*NaN"):
        page = np.ones((3, DIM), np.float32)
        page[1, 2] = np.nan
        store.add_vectors(["nan"], [page], [Document(page_content="x")])
    with pytest.raises(StoreError, match=r"'zero'.*zero"):
        store.add_vectors(["zero"], [np.zeros((2, DIM), np.float32)], [Document(page_content="x")])
    with pytest.raises(StoreError, match="'empty'"):
        store.add_vectors(["empty"], [np.zeros((0, DIM), np.float32)], [Document(page_content="")])
    assert len(store) == 3


def test_delete_upsert_and_get() -> None:
    pages = clustered_pages(10)
    store = filled(pages)
    store.delete(["p3", "unknown"])
    assert len(store) == 9
    assert store.get_by_ids(["p3", "p4"])[0].id == "p4"
    assert "p3" not in {d.id for d, _ in store.search_by_tokens(pages[3], k=10)}
    store.add_vectors(["p4"], [pages[3]], [Document(page_content="new.png")])
    assert len(store) == 9
    top = store.search_by_tokens(pages[3], k=1)[0][0]
    assert (top.id, top.page_content) == ("p4", "new.png")
    np.testing.assert_allclose(store.page_vectors("p4"), pages[3], atol=1e-3)


def test_save_reopen_delete_and_compact(tmp_path: Path) -> None:
    pages = clustered_pages(25)
    store = filled(pages, folder=tmp_path / "mv")
    store.delete(["p0"])
    store.save()
    store.close()
    again = MultiVectorImageStore(None, tmp_path / "mv")
    assert len(again) == 24
    assert again.patch_count == sum(len(p) for p in pages[1:])
    query = pages[7][:4]
    assert again.search_by_tokens(query, k=3)[0][0].id == "p7"
    assert [p.name for p in (tmp_path / "mv").glob("patches-*.npy")].__len__() == 1
    assert again.bytes_per_page() == pytest.approx(2 * DIM * again.patch_count / 24)


def test_a_crash_mid_save_keeps_the_last_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_image_embeddings.vectorstores.multivector import _files

    pages = clustered_pages(6)
    store = filled(pages[:3], folder=tmp_path / "mv")
    store.save()
    store.add_vectors(["p3"], [pages[3]], [Document(page_content="page3.png")])
    real = _files.write_atomic

    def crash(path: Path, data: bytes) -> Path:
        if Path(path).name == "manifest.json":
            raise KeyboardInterrupt  # the process dies before the manifest is replaced
        return real(path, data)

    monkeypatch.setattr(_files, "write_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save()
    monkeypatch.undo()
    store.close()  # saves again, completely this time
    reopened = MultiVectorImageStore(None, tmp_path / "mv")
    assert sorted(d.id or "" for d in reopened.get_by_ids(["p0", "p1", "p2", "p3"])) == [
        "p0",
        "p1",
        "p2",
        "p3",
    ]


def test_a_crash_before_the_manifest_reopens_the_previous_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_image_embeddings.vectorstores.multivector import _files

    pages = clustered_pages(4)
    store = filled(pages[:2], folder=tmp_path / "mv")
    store.save()
    store.add_vectors(["p2"], [pages[2]], [Document(page_content="page2.png")])

    def crash(path: Path, data: bytes) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(_files, "write_atomic", crash)
    with pytest.raises(OSError):
        store.save()
    store._lock_release()  # type: ignore[misc]  # the crashed process lets go of the folder
    reopened = MultiVectorImageStore(None, tmp_path / "mv")
    assert len(reopened) == 2
    manifest = json.loads((tmp_path / "mv" / "manifest.json").read_text())
    assert (tmp_path / "mv" / manifest["patches"]).exists()


def test_pooling_cuts_rows_and_keeps_the_top_page() -> None:
    pages = clustered_pages(40, seed=9)
    pooled = filled(pages, pool_factor=3, patch_index=None)
    plain = filled(pages, patch_index=None)
    assert pooled.patch_count <= sum(-(-len(p) // 3) for p in pages)
    assert pooled.bytes_per_page() < plain.bytes_per_page() / 2.5
    agree = sum(
        pooled.search_by_tokens(q, k=1)[0][0].id == plain.search_by_tokens(q, k=1)[0][0].id
        for q in queries_for(pages, 20, seed=10)
    )
    assert agree >= 16
    assert pool_tokens(pages[0], 1).shape == pages[0].shape


class ColourEmbedder:
    """A fake late-interaction model: a page's patches are the colours of a 4x4 grid of its
    cells; a query's tokens are the colours it names. "red" finds the page with red on it."""

    model_id = "test:colours"
    dim = 4
    COLOURS: ClassVar[dict[str, tuple[float, float, float]]] = {
        "red": (1.0, 0.0, 0.0),
        "green": (0.0, 1.0, 0.0),
        "blue": (0.0, 0.0, 1.0),
    }

    def __init__(self) -> None:
        self.calls = 0

    def embed_pages(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        self.calls += len(images)
        out = []
        for image in images:
            cells = np.asarray(image.convert("RGB").resize((4, 4)), dtype=np.float32) / 255
            rows = np.concatenate([cells.reshape(16, 3), np.full((16, 1), 0.1)], axis=1)
            out.append((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        rows = np.array([[*self.COLOURS[w], 0.1] for w in text.split() if w in self.COLOURS])
        return rows.astype(np.float32)


def page_image(path: Path, colour: tuple[int, int, int]) -> str:
    image = Image.new("RGB", (64, 64), "white")
    image.paste(colour, (0, 0, 16, 16))
    image.save(path)
    return str(path)


def test_images_get_content_ids_duplicates_skip_and_failures_report(tmp_path: Path) -> None:
    embedder = ColourEmbedder()
    store = MultiVectorImageStore(embedder, tmp_path / "mv")
    red = page_image(tmp_path / "red.png", (255, 0, 0))
    blue = page_image(tmp_path / "blue.png", (0, 0, 255))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = store.add_images([red, str(tmp_path / "broken.png"), blue])
    assert len(result.added) == 2 and [e.index for e in result.failures] == [1]
    again = store.add_images([red])
    assert again.skipped == result.added[:1] and not again.added
    assert embedder.calls == 2
    store.close()
    reopened = MultiVectorImageStore(ColourEmbedder(), tmp_path / "mv")
    assert reopened.similarity_search("red", k=1)[0].metadata["source"].endswith("red.png")
    hits = reopened.similarity_search_with_relevance_scores("blue", k=2)
    assert hits[0][0].page_content.endswith("blue.png") and 0 <= hits[1][1] <= hits[0][1] <= 1
    retriever = reopened.as_retriever(search_kwargs={"k": 1})
    assert retriever.invoke("red")[0].page_content.endswith("red.png")


def test_add_texts_is_all_or_nothing(tmp_path: Path) -> None:
    store = MultiVectorImageStore(ColourEmbedder())
    red = page_image(tmp_path / "red.png", (255, 0, 0))
    with pytest.raises(ImageLoadError, match=r"missing\.png"):
        store.add_texts([red, str(tmp_path / "missing.png")])
    assert len(store) == 0
    ids = store.add_texts([red], metadatas=[{"book": "b"}])
    assert store.get_by_ids(ids)[0].metadata["book"] == "b"


def test_another_model_is_refused(tmp_path: Path) -> None:
    store = MultiVectorImageStore(ColourEmbedder(), tmp_path / "mv")
    store.add_images([page_image(tmp_path / "g.png", (0, 255, 0))])
    store.close()

    class Other(ColourEmbedder):
        model_id = "test:other"

    with pytest.raises(ModelMismatchError, match="test:colours"):
        MultiVectorImageStore(Other(), tmp_path / "mv")
