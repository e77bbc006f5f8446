"""Guarantees both image stores keep (FAISS and embedded Chroma), per VectorStoreIntegrationTests:
idempotent add by id, overwrite by id, delete, get by ids; plus relevance scores, filters, MMR."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.vectorstores import content_id
from langchain_image_embeddings.vectorstores.base import ImageVectorStore
from tests.unit_tests.store_helpers import EncoderSpy, StoreFactory, write_folder, write_image


def run_contract(store: ImageVectorStore, folder: Path, spy: EncoderSpy) -> None:
    """The store guarantees that matter, shared with the Chroma-server integration test."""
    paths = write_folder(folder, 4)
    spy.take()
    first = store.add_images(paths)
    assert len(first.added) == 4 and not first.skipped and not first.failures
    assert spy.take() == 4 and len(store) == 4

    # idempotent add: same bytes, same model -> same ids, nothing embedded
    again = store.add_images([str(p) for p in paths])
    assert again.added == [] and sorted(again.skipped) == sorted(first.added)
    assert spy.take() == 0 and len(store) == 4

    # ids derive from content and the model
    doc0 = ImageDirectoryLoader(folder).load()[0]
    expected = content_id(doc0.metadata["sha256"], store.embeddings.model_id)
    assert expected in first.added

    # get by ids: documents come back with their id, URI and metadata; unknown ids are left out
    got = store.get_by_ids([expected, "missing-id"])
    assert len(got) == 1 and got[0].id == expected
    assert got[0].page_content == doc0.page_content
    assert got[0].metadata["sha256"] == doc0.metadata["sha256"]

    # overwrite by id: an upsert under an existing id replaces it, no duplicate
    vector = np.asarray(store.embeddings.embed_images([paths[0]]), dtype=np.float32)
    newdoc = Document(page_content=doc0.page_content, metadata={**doc0.metadata, "tag": "v2"})
    store.upsert_vectors([expected], vector, [newdoc])
    assert len(store) == 4
    assert store.get_by_ids([expected])[0].metadata["tag"] == "v2"

    # a changed file replaces its old vector
    write_image(paths[1], seed=99)
    changed = store.add_images([paths[1]])
    assert len(changed.added) == 1 and len(changed.replaced) == 1 and len(store) == 4
    assert store.get_by_ids(changed.replaced) == []

    # delete (unknown ids ignored)
    store.delete([expected, "missing-id"])
    assert len(store) == 3 and store.get_by_ids([expected]) == []


def test_contract(
    make_store: StoreFactory,
    tiny_clip_embeddings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch)
    run_contract(make_store(tiny_clip_embeddings), tmp_path / "imgs", spy)


def test_failures_are_reported(
    make_store: StoreFactory, tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    good = write_folder(tmp_path / "imgs", 2)
    bad = tmp_path / "imgs" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    store = make_store(tiny_clip_embeddings)
    result = store.add_images([*good, bad, tmp_path / "missing.png"])
    assert len(result.added) == 2 and len(store) == 2
    assert sorted(e.code for e in result.failures) == ["corrupt", "not_found"]


def run_relevance(store: ImageVectorStore, photos_dir: Path) -> None:
    """Exact-duplicate query scores >= 0.99; scores in [0, 1] and decreasing with rank."""
    originals = sorted(photos_dir.glob("*.jpg"))
    store.add_images(originals)
    query = photos_dir / "chelsea.jpg"
    hits = store.similarity_search_by_image_with_relevance_score(query, k=len(originals))
    scores = [s for _, s in hits]
    assert hits[0][0].metadata["source"] == str(query.resolve())
    assert scores[0] >= 0.99
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert scores[1] < 0.99  # a different photo is not a duplicate
    # the LangChain method finds the same image
    stock = store.similarity_search_by_vector(list(store.embeddings.embed_images([query])[0]), k=1)
    assert stock[0].page_content == str(query.resolve())
    # a score threshold keeps only close images
    close = store.similarity_search_by_image_with_relevance_score(query, k=5, score_threshold=0.99)
    assert [d.page_content for d, _ in close] == [str(query.resolve())]


def test_relevance_scores_real_photos(
    make_store: StoreFactory, lite0_embeddings: Any, photos_dir: Path
) -> None:
    run_relevance(make_store(lite0_embeddings), photos_dir)


def test_text_query_filter_and_mmr(
    make_store: StoreFactory, tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    write_folder(folder, 6)
    write_image(folder / "j.jpg", 50, fmt="JPEG")
    store = make_store(tiny_clip_embeddings)
    store.add_images(ImageDirectoryLoader(folder).load())
    text_hits = store.similarity_search_with_score("a photo", k=3)
    assert len(text_hits) == 3 and all(0 <= s <= 1 for _, s in text_hits)
    only_jpeg = store.similarity_search_with_score("a photo", k=5, filter={"format": "JPEG"})
    assert [d.metadata["format"] for d, _ in only_jpeg] == ["JPEG"]
    mmr = store.max_marginal_relevance_search_by_vector(
        store.embeddings.embed_query("a photo"), k=4, fetch_k=7
    )
    assert len(mmr) == 4 and len({d.page_content for d in mmr}) == 4
    # LangChain's own relevance-score search embeds the query as text
    stock = store.similarity_search_with_relevance_scores("a photo", k=2)
    assert len(stock) == 2 and all(0 <= s <= 1 for _, s in stock)


def test_duplicate_bytes_share_one_vector(
    make_store: StoreFactory, tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    src = write_image(tmp_path / "a.png", 1)
    shutil.copy(src, tmp_path / "copy.png")
    store = make_store(tiny_clip_embeddings)
    result = store.add_images([src, tmp_path / "copy.png"])
    assert len(result.added) == 1 and len(store) == 1


def run_cli_index_search(store: str, photos_dir: Path, capsys: Any) -> None:
    """``imgemb index`` the 8 real photos into ``store``, then ``search`` with a crop: the
    shared CLI check of the server-backed stores (Chroma, Milvus)."""
    import json

    from langchain_image_embeddings import cli

    index = ["index", str(photos_dir), "--store", store, "--model", "timm:efficientnet_lite0"]
    options = ["--device", "cpu", "--quiet", "--glob", "*.jpg", "--exclude", "copies/*", "--json"]
    code = cli.main([*index, *options])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["added"] == 8 and summary["failed"] == 0
    copy = photos_dir / "copies" / "coffee-crop.jpg"
    code = cli.main(
        ["search", "--image", str(copy), "--store", store, "-k", "3", "--json", "--device", "cpu"]
    )
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and Path(rows[0]["source"]).name == "coffee.jpg"
    assert rows[0]["score"] > rows[1]["score"] >= rows[2]["score"]


def test_constructor_arguments_are_documented_once_and_match_the_signature() -> None:
    """The class docstring's "Key init args" is the one place the arguments are described:
    it names exactly the constructor's parameters, and the constructor repeats none."""
    import inspect
    import re

    from langchain_image_embeddings.vectorstores import (
        ChromaImageStore,
        FAISSImageStore,
        MilvusImageStore,
    )

    for cls in (FAISSImageStore, ChromaImageStore, MilvusImageStore):
        doc = inspect.getdoc(cls) or ""
        section = doc.split("Key init args:")[1].split("\n\n")[0]
        documented = re.findall(r"^    (\w+): ", section, flags=re.MULTILINE)
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        assert documented == params, cls.__name__
        assert "Args:" not in (inspect.getdoc(cls.__init__) or ""), cls.__name__


def test_store_spec_is_a_frozen_value_and_the_lock_lives_in_the_base_class() -> None:
    import dataclasses

    from langchain_image_embeddings.vectorstores import (
        ChromaImageStore,
        FAISSImageStore,
        MilvusImageStore,
        StoreSpec,
        parse_store_spec,
    )

    spec = parse_store_spec("chroma+http://127.0.0.1:8000/photos")
    assert spec == StoreSpec("chroma+http", host="127.0.0.1", port=8000, collection="photos")
    assert hash(spec) == hash(parse_store_spec("chroma+http://127.0.0.1:8000/photos"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.port = 1  # type: ignore[misc]
    assert parse_store_spec("chroma:db").collection == "images"  # the store's default
    for cls in (FAISSImageStore, ChromaImageStore, MilvusImageStore):
        assert "acquire_write_lock" not in vars(cls) and "close" not in vars(cls)


def test_stores_are_one_class_over_a_backend() -> None:
    """VectorStore -> ImageVectorStore -> the store: the backend is held, not inherited."""
    from langchain_core.vectorstores import VectorStore

    from langchain_image_embeddings.vectorstores import (
        ChromaImageStore,
        FAISSImageStore,
        MilvusImageStore,
    )

    for cls in (FAISSImageStore, ChromaImageStore, MilvusImageStore):
        assert cls.__mro__[1:3] == (ImageVectorStore, VectorStore), cls.__mro__
    for legacy in ("search_by_vector", "search_by_text", "search_by_image", "mmr_by_vector"):
        assert not hasattr(ImageVectorStore, legacy)
    assert not hasattr(ImageVectorStore, "vectorstore")
    assert not hasattr(ImageVectorStore, "add_from_parquet")


def test_swapped_path_and_embeddings_are_refused(tmp_path: Path) -> None:
    """``FAISSImageStore(embeddings, path)`` but ``.open(path, embeddings)``: a swap is named."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_image_embeddings.vectorstores import (
        ChromaImageStore,
        FAISSImageStore,
        MilvusImageStore,
        open_store,
    )

    model = DeterministicFakeEmbedding(size=8)
    folder = tmp_path / "index"
    path_first = r"embeddings= got the path .*index.*swapped"
    model_second = r"path= got the model DeterministicFakeEmbedding.*swapped"
    with pytest.raises(TypeError, match=path_first):
        FAISSImageStore(str(folder), model)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=path_first):
        FAISSImageStore(folder, model)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=path_first):
        FAISSImageStore.open(model, folder)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=path_first):
        FAISSImageStore.load(model, folder)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=model_second):
        FAISSImageStore.open(model, model)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=path_first):
        ChromaImageStore.persistent(model, folder)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"embeddings= got the path 'http://127.0.0.1:1'"):
        MilvusImageStore.connect(model, "http://127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="spec= got DeterministicFakeEmbedding"):
        open_store(model, "faiss:index")  # type: ignore[arg-type]
    assert not folder.exists()  # refused before anything was created
    # by keyword, either order reads the same everywhere
    store = FAISSImageStore(path=folder, embeddings=model)
    store.add_texts(["a", "b"])
    store.save()
    assert len(FAISSImageStore.open(embeddings=model, path=folder)) == 2
    assert len(FAISSImageStore.load(path=folder, embeddings=model)) == 2


def test_a_huge_finite_vector_is_stored_as_its_direction(make_store: StoreFactory) -> None:
    """Values above ~1.8e19 overflow a float32 norm: the row used to be stored unscaled (norm
    inf, searches scoring NaN); it is a direction like any other and is stored at length 1."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    store = make_store(DeterministicFakeEmbedding(size=4))
    huge = np.array([[3.0e38, 0.0, 4.0e38 / 2, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    store.upsert_vectors(["huge", "small"], huge, [Document(page_content=t) for t in "ab"])
    stored = store.get_vectors(["huge", "small"])
    np.testing.assert_allclose(np.linalg.norm(stored.astype(np.float64), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(stored[0], [0.8320503, 0.0, 0.5547002, 0.0], atol=1e-6)
    ((doc, score),) = store.similarity_search_with_score_by_vector([1.0, 0.0, 1.0, 0.0], k=1)
    assert doc.id == "huge" and 0.0 <= score <= 1.0
