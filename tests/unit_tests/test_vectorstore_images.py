"""The LangChain ``VectorStore`` face of the image stores, with image models.

With an ``ImageEmbeddings`` a document's ``page_content`` is its image URI: the stores embed
it as an image under a content id, text queries go through the CLIP text tower and
``similarity_search_by_image`` takes any image input. Identical bytes at several paths keep
every path.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
from PIL import Image

from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.errors import EncoderError, ImageLoadError, ModelMismatchError
from langchain_image_embeddings.sync import sync_directory
from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore, content_id
from tests.unit_tests.store_helpers import StoreFactory, write_folder, write_image


def test_stores_are_langchain_vectorstores(
    make_store: StoreFactory, tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    store = make_store(tiny_clip_embeddings)
    assert isinstance(store, VectorStore)
    paths = write_folder(tmp_path / "imgs", 4)
    docs = ImageDirectoryLoader(tmp_path / "imgs").load()

    ids = store.add_documents(docs)
    # content ids: file hash + model, in input order
    assert ids == [content_id(d.metadata["sha256"], tiny_clip_embeddings.model_id) for d in docs]
    assert store.add_documents(docs) == ids and len(store) == 4  # idempotent

    # the page_content is the URI and the vector is the image's, not the string's
    got = store.get_by_ids([ids[0]])[0]
    assert got.page_content == docs[0].page_content and got.metadata["sha256"]
    hit, score = store.similarity_search_by_image_with_relevance_score(paths[0], k=1)[0]
    assert hit.id == ids[0] and score > 0.999

    # any image input: PIL, bytes; langchain-chroma's uri= keyword
    assert store.similarity_search_by_image(Image.open(paths[1]), k=1)[0].id == ids[1]
    assert store.similarity_search_by_image(paths[2].read_bytes(), k=1)[0].id == ids[2]
    assert store.similarity_search_by_image(uri=str(paths[3]), k=1)[0].id == ids[3]

    # text query through the CLIP text tower; relevance in [0, 1] and ranked
    scored = store.similarity_search_with_relevance_scores("a photo", k=4)
    assert len(scored) == 4 and all(0.0 <= s <= 1.0 for _, s in scored)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    text_vector = tiny_clip_embeddings.embed_query("a photo")
    assert [d.id for d in store.similarity_search_by_vector(text_vector, k=4)] == [
        d.id for d, _ in scored
    ]
    assert len(store.max_marginal_relevance_search("a photo", k=2, fetch_k=4)) == 2
    assert len(store.max_marginal_relevance_search_by_image(paths[0], k=3)) == 3

    # a stock LangChain retriever over the store
    retriever = store.as_retriever(search_kwargs={"k": 2})
    assert isinstance(retriever, VectorStoreRetriever)
    assert len(retriever.invoke("a photo")) == 2

    # delete by id
    assert store.delete([ids[0], "missing"]) is True
    assert store.get_by_ids([ids[0]]) == [] and len(store) == 3


def test_async_contract(
    make_store: StoreFactory, tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    store = make_store(tiny_clip_embeddings)
    paths = [str(p) for p in write_folder(tmp_path / "imgs", 3)]

    async def run() -> None:
        ids = await store.aadd_texts(paths)
        assert len(await store.aget_by_ids(ids)) == 3
        assert (await store.asimilarity_search("a photo", k=2))[0].id in ids
        retriever = store.as_retriever(search_kwargs={"k": 1})
        assert len(await retriever.ainvoke("a photo")) == 1
        await store.adelete(ids[:1])
        assert len(await store.aget_by_ids(ids)) == 2

    asyncio.run(run())


def test_unreadable_uri_writes_nothing(
    make_store: StoreFactory, tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    store = make_store(tiny_clip_embeddings)
    good = [str(p) for p in write_folder(tmp_path / "imgs", 2)]
    with pytest.raises(ImageLoadError) as info:
        store.add_texts([*good, str(tmp_path / "missing.png")])
    assert info.value.index == 2 and "nothing was written" in str(info.value)
    assert len(store) == 0


def test_text_query_on_image_only_model_is_a_clear_error(
    make_store: StoreFactory, lite0_embeddings: Any, photos_dir: Path
) -> None:
    store = make_store(lite0_embeddings)
    store.add_texts([str(photos_dir / "chelsea.jpg")])
    with pytest.raises(EncoderError, match=r"no text tower.*similarity_search_by_image"):
        store.similarity_search("a cat", k=1)
    # image queries work, and find the real photo's crop
    hit = store.similarity_search_by_image(photos_dir / "copies" / "chelsea-crop.jpg", k=1)[0]
    assert hit.page_content.endswith("chelsea.jpg")
    # an image URI as the "text" query is the image: stock retrievers search image-to-image
    store.add_texts([str(photos_dir / "rocket.jpg")])
    crop = str(photos_dir / "copies" / "chelsea-crop.jpg")
    assert store.similarity_search(crop, k=1)[0].page_content.endswith("chelsea.jpg")
    via_retriever = store.as_retriever(search_kwargs={"k": 1}).invoke(crop)
    assert via_retriever[0].page_content.endswith("chelsea.jpg")
    with pytest.raises(EncoderError, match="no text tower"):
        store.similarity_search(str(photos_dir / "missing.jpg"), k=1)  # no such file: text


def test_from_texts_and_from_documents(tiny_clip_embeddings: Any, tmp_path: Path) -> None:
    paths = [str(p) for p in write_folder(tmp_path / "imgs", 3)]
    store = FAISSImageStore.from_texts(paths, tiny_clip_embeddings, path=tmp_path / "idx")
    assert len(FAISSImageStore.load(tmp_path / "idx", tiny_clip_embeddings)) == 3
    docs = [Document(page_content=p, metadata={"tag": i}) for i, p in enumerate(paths)]
    chroma = ChromaImageStore.from_documents(
        docs, tiny_clip_embeddings, persist_directory=tmp_path / "chroma"
    )
    assert {d.metadata["tag"] for d in chroma.similarity_search("x", k=3)} == {0, 1, 2}
    store.close()
    chroma.close()


def test_open_or_create_reopens_an_existing_folder(
    tiny_clip_embeddings: Any, lite0_embeddings: Any, tmp_path: Path
) -> None:
    paths = write_folder(tmp_path / "imgs", 3)
    first = FAISSImageStore(tiny_clip_embeddings, tmp_path / "index")
    first.add_images(paths)
    first.save()
    first.close()
    again = FAISSImageStore(tiny_clip_embeddings, tmp_path / "index")  # opens, not recreates
    assert len(again) == 3
    assert sync_directory(again, tmp_path / "imgs").embedded == 0  # and can write
    again.close()
    with pytest.raises(ModelMismatchError):
        FAISSImageStore(lite0_embeddings, tmp_path / "index")


README_EXAMPLE = """
from langchain_image_embeddings import (
    FAISSImageStore, ImageEmbeddings, ImageToImageRetriever, sync_directory,
)

embeddings = ImageEmbeddings("timm:efficientnet_lite0")
store = FAISSImageStore(embeddings, "index")       # opens the store there, or starts one
result = sync_directory(store, "photos")            # embeds only new or changed images
print(result.embedded, "embedded")
retriever = ImageToImageRetriever(store=store, k=3)
docs = retriever.invoke("photos/copies/chelsea-crop.jpg")   # Documents: URI + metadata + score
print("top", docs[0].metadata["source"])
"""


def test_readme_python_example_runs_twice_in_two_processes(
    photos_dir: Path, tmp_path: Path
) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    body = textwrap.dedent(README_EXAMPLE).strip().splitlines()
    assert "\n".join(body[:-1]) in readme  # the test runs what the README says
    shutil.copytree(photos_dir, tmp_path / "photos")
    outputs = []
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-c", README_EXAMPLE],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        outputs.append(run.stdout)
    assert outputs[0].startswith("40 embedded") and outputs[1].startswith("0 embedded")
    assert "chelsea" in outputs[1].split("top", 1)[1]


def test_identical_bytes_keep_every_path(
    make_store: StoreFactory, tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    paths = write_folder(folder, 4)
    shutil.copy(paths[0], folder / "zz-copy.png")
    store = make_store(tiny_clip_embeddings)

    result = sync_directory(store, folder)
    first, copy = str(paths[0].resolve()), str((folder / "zz-copy.png").resolve())
    assert result.embedded == 4 and len(store) == 4
    assert result.duplicates == {copy: first}
    assert result.counts()["duplicates"] == 1
    row = next(r for r in result.report() if r["input"] == copy)
    assert row["status"] == "ok" and row["duplicate_of"] == first
    record = next(m for m in store.records().values() if m["source"] == first)
    assert record["sources"] == [first, copy]

    # rerun: nothing embedded, the duplicate still said
    again = sync_directory(store, folder)
    assert again.embedded == 0 and again.duplicates == {copy: first}

    # deleting one path keeps the record for the other
    paths[0].unlink()
    after = sync_directory(store, folder)
    assert after.removed == [first] and len(store) == 4
    record = next(m for m in store.records().values() if copy in m["sources"])
    assert record["source"] == copy and record["sources"] == [copy]
    assert after.duplicates == {}

    # add_images reports duplicates too, and a later path joins an existing record
    shutil.copy(folder / "zz-copy.png", folder / "third.png")
    added = store.add_images([folder / "third.png"])
    third = str((folder / "third.png").resolve())
    assert added.added == [] and added.duplicates == {third: copy}
    record = next(m for m in store.records().values() if copy in m["sources"])
    assert record["sources"] == [copy, third]

    # a duplicate whose bytes change leaves the shared record and gets its own
    write_image(folder / "third.png", seed=77)
    changed = store.add_images([folder / "third.png"])
    assert len(changed.added) == 1 and changed.replaced == [] and len(store) == 5
    record = next(m for m in store.records().values() if copy in m["sources"])
    assert record["sources"] == [copy]


def test_forty_one_files_forty_records_are_reported_by_the_cli(
    lite0_embeddings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from langchain_image_embeddings import cli

    folder = tmp_path / "imgs"
    paths = write_folder(folder, 40)
    shutil.copy(paths[5], folder / "zz-dup.png")
    dup, original = str((folder / "zz-dup.png").resolve()), str(paths[5].resolve())
    store = f"faiss:{tmp_path / 'index'}"
    report = tmp_path / "report.jsonl"
    base = ["index", str(folder), "--store", store, "--model", "timm:efficientnet_lite0"]
    assert cli.main([*base, "--device", "cpu", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "added 40," in out and "duplicates 1," in out and "40 in store" in out
    assert f"duplicate: {dup} has the same bytes as {original}" in out
    rows = {r["input"]: r for r in map(json.loads, report.read_text().splitlines())}
    assert len(rows) == 41 and rows[dup]["duplicate_of"] == original
    assert rows[original]["duplicate_of"] is None
    assert cli.main([*base, "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["embedded"], summary["duplicates"], summary["total"]) == (0, 1, 40)
    assert summary["duplicate_of"] == {dup: original}


def test_text_model_store_round_trip(tmp_path: Path, tiny_clip_embeddings: Any) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding, FakeEmbeddings

    from langchain_image_embeddings.errors import StoreError

    fake = DeterministicFakeEmbedding(size=8)
    store = FAISSImageStore.from_texts(
        ["a cat", "a dog"], fake, metadatas=[{"n": 1}, {"n": 2}], path=tmp_path / "text"
    )
    store.close()
    with pytest.raises(StoreError, match="not an image model"):
        FAISSImageStore.load(tmp_path / "text")
    reopened = FAISSImageStore.load(tmp_path / "text", fake)
    doc, score = reopened.similarity_search_with_score("a dog", k=1)[0]
    assert doc.page_content == "a dog" and doc.metadata == {"n": 2} and score > 0.999
    with pytest.raises(ModelMismatchError):
        FAISSImageStore(FakeEmbeddings(size=8), tmp_path / "text")
    with pytest.raises(ModelMismatchError):
        FAISSImageStore(tiny_clip_embeddings, tmp_path / "text")
    with pytest.raises(EncoderError, match="cannot embed images"):
        reopened.similarity_search_by_image(tmp_path / "x.png")
