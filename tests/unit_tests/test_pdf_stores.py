"""PDF pages and figures through the stores, ``sync_directory``, ``imgemb index``, the
thumbnails of the search page and the RAG message: the address design, end to end."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pypdfium2")

from PIL import Image

from langchain_image_embeddings import cli
from langchain_image_embeddings.documents import PDFImageLoader
from langchain_image_embeddings.images import ImageLoadOptions
from langchain_image_embeddings.messages import image_rag_message
from langchain_image_embeddings.serve.thumbnails import ThumbnailCache
from langchain_image_embeddings.sync import sync_directory
from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore
from tests.unit_tests import pdf_samples as samples
from tests.unit_tests.store_helpers import EncoderSpy, write_image
from tests.unit_tests.test_pdf_documents import hostile_folder

#: report.pdf: 3 pages and 2 figures (the logo is too small).
REPORT_DOCS = 5


def report_sources(path: Path) -> list[str]:
    return [
        f"{path}#page=1",
        f"{path}#page=2",
        f"{path}#page=2&figure=1",
        f"{path}#page=2&figure=2",
        f"{path}#page=3",
    ]


@pytest.mark.parametrize("kind", ["faiss", "chroma"])
def test_add_images_takes_pdfs_pages_and_reports_hostile_files(
    kind: str, tiny_clip_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = hostile_folder(tmp_path / "in")
    photo = write_image(tmp_path / "in" / "photo.png", seed=3)
    store = (
        FAISSImageStore(tiny_clip_embeddings, tmp_path / "faiss")
        if kind == "faiss"
        else ChromaImageStore.persistent(tmp_path / "chroma", tiny_clip_embeddings)
    )
    spy = EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch)
    inputs = [files["good"], files["encrypted"], photo, files["truncated"], files["empty"]]
    result = store.add_images(inputs)
    assert spy.take() == REPORT_DOCS + 1 and len(result.added) == REPORT_DOCS + 1
    assert [(e.index, e.code) for e in result.failures] == [
        (1, "encrypted"),
        (3, "truncated"),
        (4, "empty"),
    ]
    sources = {d.metadata["source"] for d in store.get_by_ids(result.added)}
    assert sources == {*report_sources(files["good"]), str(photo)}
    # a page address is one more way to name the same page: same content id, nothing embedded
    again = store.add_images([files["good"], f"{files['good']}#page=2"])
    assert spy.take() == 0 and not again.added and not again.failures
    assert again.input_ids[-1] == again.input_ids[1]
    hits = store.similarity_search("a bar chart", k=10)
    page_one = next(d for d in hits if d.metadata.get("page") == 1 and d.metadata["kind"] == "page")
    assert page_one.page_content == f"{files['good']}#page=1"
    assert page_one.metadata["text"] == samples.TITLE
    figure = next(d for d in hits if d.metadata.get("kind") == "figure")
    assert len(figure.metadata["bbox"]) == 4


def test_content_ids_are_stable_across_stores_and_runs(
    tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    report = samples.write(tmp_path / "a" / "report.pdf", samples.report_bytes())
    first = FAISSImageStore(tiny_clip_embeddings).add_images([report]).input_ids
    second = FAISSImageStore(tiny_clip_embeddings).add_images(PDFImageLoader(report).load())
    assert first == second.input_ids and len(set(first)) == REPORT_DOCS
    # a string address is checked against the page hash (no false "changed")
    single = FAISSImageStore(tiny_clip_embeddings).add_images([f"{report}#page=3"])
    assert single.input_ids == [first[-1]] and not single.failures


def test_sync_directory_indexes_pdfs_keeps_broken_ones_and_removes_gone_ones(
    tiny_clip_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "docs"
    files = hostile_folder(folder)
    write_image(folder / "photo.png", seed=5)
    store = FAISSImageStore(tiny_clip_embeddings, tmp_path / "store")
    spy = EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch)

    result = sync_directory(store, folder, pdf=True)
    assert result.embedded == REPORT_DOCS + 1 and spy.take() == REPORT_DOCS + 1
    assert {Path(e.source).name: e.code for e in result.failed} == {
        "encrypted.pdf": "encrypted",
        "truncated.pdf": "truncated",
        "damaged.pdf": "corrupt",
        "photo.pdf": "unsupported_format",
        "empty.pdf": "empty",
    }
    rows = {r["input"]: r for r in result.report()}
    assert rows[f"{files['good']}#page=2&figure=1"]["status"] == "ok"
    assert rows[str(files["encrypted"])]["code"] == "encrypted"

    # a second run embeds nothing
    assert sync_directory(store, folder, pdf=True).embedded == 0 and spy.take() == 0

    # the good PDF gets damaged: its pages keep their vectors, the file is reported
    good = files["good"].read_bytes()
    files["good"].write_bytes(good[: len(good) // 2])
    broken = sync_directory(store, folder, pdf=True)
    assert broken.removed == [] and str(files["good"]) in {e.source for e in broken.failed}
    assert set(report_sources(files["good"])) <= {m["source"] for m in store.records().values()}

    # gone: every page and figure of it leaves the store
    files["good"].unlink()
    gone = sync_directory(store, folder, pdf=True)
    assert sorted(gone.removed) == sorted(report_sources(files["good"]))
    assert len(store) == 1


@pytest.mark.slow
def test_imgemb_index_pdf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lite0_embeddings: Any
) -> None:
    folder = tmp_path / "docs"
    files = hostile_folder(folder)
    shutil.copy(files["good"], folder / "copy-of-good.pdf")  # the same bytes: duplicates
    store = f"faiss:{tmp_path / 'store'}"
    argv = ["index", str(folder), "--store", store, "--model", "timm:efficientnet_lite0"]
    code = cli.main([*argv, "--pdf", "--skip-errors", "--json", "--quiet", "--device", "cpu"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (summary["added"], summary["duplicates"], summary["embedded"]) == (5, 5, 5)
    assert sorted(e["code"] for e in summary["errors"]) == sorted(
        ["encrypted", "truncated", "corrupt", "unsupported_format", "empty"]
    )
    # without --pdf the folder holds no image: nothing to index
    code = cli.main([*argv, "--quiet"])
    assert code == 2 and "no image files" in capsys.readouterr().err


def test_thumbnails_and_rag_messages_render_pages_through_the_address(tmp_path: Path) -> None:
    report = samples.write(tmp_path / "report.pdf", samples.report_bytes())
    cache = ThumbnailCache(ImageLoadOptions(), sizes=(128,))
    page = Image.open(io.BytesIO(cache.get("id-1", f"{report}#page=1", 128)))
    assert page.format == "JPEG" and page.size == (99, 128)  # a 612 x 792 page
    rotated = Image.open(io.BytesIO(cache.get("id-3", f"{report}#page=3", 128)))
    assert rotated.size == (63, 128)  # 300 x 612 as displayed
    figure = Image.open(io.BytesIO(cache.get("id-f", f"{report}#page=2&figure=1", 128)))
    assert figure.size == (128, 96)

    docs = [d for d in PDFImageLoader(report).load() if d.metadata["kind"] == "page"][:1]
    message = image_rag_message("Which region sold most?", docs, max_side=256)
    blocks = message.content
    assert blocks[1] == {"type": "text", "text": "[image 1] report.pdf, page 1"}
    sent = Image.open(io.BytesIO(base64.b64decode(blocks[2]["base64"])))  # type: ignore[index]
    assert sent.size == (198, 256)
    x, y, w, h = samples.BARS[3]  # the tallest bar, in its colour
    scale = 256 / samples.PAGE_H
    r, g, b = sent.getpixel((int((x + w / 2) * scale), int((samples.PAGE_H - y - h / 2) * scale)))
    assert (r, g, b) == pytest.approx(samples.BAR_COLOURS[3], abs=12)


def test_the_search_page_api_serves_page_records_and_their_thumbnails(
    tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from langchain_image_embeddings.serve import create_app

    report = samples.write(tmp_path / "report.pdf", samples.report_bytes())
    store = FAISSImageStore(tiny_clip_embeddings, tmp_path / "store")
    store.add_images([report])
    client = TestClient(create_app(store))
    body = client.get("/api/search/text", params={"q": "a chart", "k": 5}).json()
    assert {h["source"] for h in body["results"]} == set(report_sources(report))
    by_source = {h["source"]: h for h in body["results"]}
    chart = by_source[f"{report}#page=1"]
    # what the page shows under the thumbnail: "page 1 of report.pdf"
    assert (chart["metadata"]["page"], Path(chart["metadata"]["document"]).name) == (
        1,
        "report.pdf",
    )
    record = client.get(f"/api/records/{chart['id']}").json()
    response = client.get(record["thumbnail"], params={"size": 256})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    width, height = Image.open(io.BytesIO(response.content)).size
    assert height == 256 and abs(width - 256 * 612 / 792) <= 1  # a 612 x 792 page
    figure = by_source[f"{report}#page=2&figure=1"]
    thumb = client.get(f"/api/thumbnails/{figure['id']}", params={"size": 128})
    assert Image.open(io.BytesIO(thumb.content)).size == (128, 96)


def test_embedding_a_page_checks_its_content_hash(
    tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    from langchain_image_embeddings.images import read_image_source

    report = samples.write(tmp_path / "report.pdf", samples.report_bytes())
    pages = [f"{report}#page=1", f"{report}#page=2&figure=1"]
    hashes = [read_image_source(p).sha256 for p in pages]
    result = tiny_clip_embeddings.try_embed_images(pages, hash_inputs=True)
    assert result.sha256 == hashes and not result.errors
    plain = tiny_clip_embeddings.embed_images(pages)
    # the hashed path renders at the same (draft) scale as the plain one: the same vectors
    assert np.allclose(result.vectors, np.asarray(plain), atol=1e-5)
    # the file rewritten after it was described: nothing embedded, code "changed"
    stale = tiny_clip_embeddings.try_embed_images(pages, expected_sha256=["0" * 64, hashes[1]])
    assert [e.code for e in stale.errors] == ["changed"] and stale.indices == [1]
