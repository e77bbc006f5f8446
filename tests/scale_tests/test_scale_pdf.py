"""Shard plans and embedding runs over folders and lists holding PDFs: pages (and figures)
are inputs with the loader's addresses and content ids; a hostile PDF is reported per file
with its own code and the rest is embedded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.documents import PDFOptions
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import ImageLoadOptions, page_address
from langchain_image_embeddings.scale import embed_dataset, plan_shards
from langchain_image_embeddings.scale.embed import read_input
from langchain_image_embeddings.scale.plan import list_source
from langchain_image_embeddings.vectorstores._records import content_id
from tests.scale_tests.corpus import read_rows
from tests.unit_tests import pdf_samples as samples

pytest.importorskip("pypdfium2")


@pytest.fixture(scope="module")
def pdf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two photos, the three-page report, an encrypted and a truncated PDF."""
    root = tmp_path_factory.mktemp("pdf-folder")
    for name, colour in (("a.png", (200, 30, 30)), ("z.png", (30, 30, 200))):
        Image.new("RGB", (48, 40), colour).save(root / name)
    report = samples.report_bytes()
    samples.write(root / "docs" / "report.pdf", report)
    samples.write(root / "docs" / "locked.pdf", samples.encrypted_bytes())
    samples.write(root / "docs" / "cut.pdf", report[: len(report) // 2])
    return root


def loader_documents(root: Path, pdf: bool | PDFOptions = True) -> list[Any]:
    loader = ImageDirectoryLoader(root, pdf=pdf, paths="absolute")
    return loader.load()


def test_a_folder_plan_lists_pages_and_figures_as_the_loader_does(pdf_folder: Path) -> None:
    docs = loader_documents(pdf_folder)
    inputs, _ = list_source(pdf_folder, pdf=True)
    report = str((pdf_folder / "docs" / "report.pdf").resolve())
    pages = [i for i in inputs if i.startswith(report)]
    assert pages == [d.page_content for d in docs if d.page_content.startswith(report)]
    assert pages[0] == page_address(report, 1)
    assert [p for p in pages if "&figure=" not in p] == [page_address(report, n) for n in (1, 2, 3)]
    assert any("&figure=" in p for p in pages)  # the report's JPEG and PNG figures
    # the hostile files stay single inputs (reported when embedded); photos as before
    assert str((pdf_folder / "docs" / "locked.pdf").resolve()) in inputs
    assert str((pdf_folder / "docs" / "cut.pdf").resolve()) in inputs
    assert inputs[:2] == [str((pdf_folder / n).resolve()) for n in ("a.png", "z.png")]
    # without pdf the folder's PDFs are not inputs at all (as the loader skips them)
    plain, _ = list_source(pdf_folder)
    assert plain == [str((pdf_folder / n).resolve()) for n in ("a.png", "z.png")]
    # figures only if the options say so
    no_figures, _ = list_source(pdf_folder, pdf=PDFOptions(figures=False))
    assert [i for i in no_figures if i.startswith(report)] == [
        page_address(report, n) for n in (1, 2, 3)
    ]


def test_a_list_plan_expands_local_pdfs_in_place(pdf_folder: Path) -> None:
    report = pdf_folder / "docs" / "report.pdf"
    given = [str(pdf_folder / "a.png"), str(report), "https://example.org/remote.pdf"]
    inputs, _ = list_source(given, pdf=PDFOptions(figures=False))
    absolute = str(report.resolve())
    assert inputs == [
        given[0],
        *(page_address(absolute, n) for n in (1, 2, 3)),
        "https://example.org/remote.pdf",  # not a local file: read as it is
    ]
    assert list_source(given)[0] == given  # no pdf: the list as given


def test_a_changed_pdf_changes_the_digest_of_its_pages_shard(tmp_path: Path) -> None:
    report = samples.write(tmp_path / "r.pdf", samples.report_bytes())
    first = plan_shards([str(report)], pdf=PDFOptions(figures=False)).shards[0]
    os.utime(report, ns=(1, 1))
    second = plan_shards([str(report)], pdf=PDFOptions(figures=False)).shards[0]
    assert first.inputs == second.inputs
    assert first.digest != second.digest


@pytest.mark.slow
def test_embedding_pages_gives_the_loaders_content_ids_and_reports_hostile_pdfs(
    pdf_folder: Path, scale_embeddings: Any, tmp_path: Path
) -> None:
    plan = plan_shards(pdf_folder, shard_size=4, pdf=True)
    out = tmp_path / "shards"
    summary = embed_dataset(plan, out, scale_embeddings)
    docs = loader_documents(pdf_folder)
    failed = {source: code for source, code, _ in summary.failures}
    assert failed == {
        str((pdf_folder / "docs" / "locked.pdf").resolve()): "encrypted",
        str((pdf_folder / "docs" / "cut.pdf").resolve()): "truncated",
    }
    assert summary.embedded == len(docs) == plan.total - 2
    rows = [r for r in read_rows(out) if r["error_code"] is None]
    model_id = str(scale_embeddings.model_id)
    expected = {d.page_content: content_id(d.metadata["sha256"], model_id) for d in docs}
    assert {str(r["source"]): r["id"] for r in rows} == expected
    # a page's vector is the embedding of that page rendered (the direct read may render
    # at a draft size, hence not bit-equal): nearest to its own direct embedding
    report = str((pdf_folder / "docs" / "report.pdf").resolve())
    pages = [page_address(report, n) for n in (1, 2, 3)]
    direct = scale_embeddings.embed_images_array(pages)
    for n, page in enumerate(pages):
        vector = np.array(next(r["vector"] for r in rows if r["source"] == page))
        assert int(np.argmax(direct @ vector)) == n
        assert float(direct[n] @ vector) > 0.99
    # a rerun finds every shard complete
    again = embed_dataset(plan, out, scale_embeddings)
    assert (again.shards_written, again.shards_skipped) == (0, len(plan))


def test_a_pdf_planned_without_pdf_keeps_the_page_hint_and_a_hostile_one_its_code(
    pdf_folder: Path,
) -> None:
    options = ImageLoadOptions()
    with pytest.raises(ImageLoadError) as readable:
        read_input(str(pdf_folder / "docs" / "report.pdf"), options)
    assert readable.value.code == "unsupported_format"
    assert "#page=N" in readable.value.reason
    with pytest.raises(ImageLoadError) as locked:
        read_input(str(pdf_folder / "docs" / "locked.pdf"), options)
    assert locked.value.code == "encrypted"
    with pytest.raises(ImageLoadError) as small:
        read_input(str(pdf_folder / "docs" / "report.pdf"), ImageLoadOptions(max_pdf_pages=2))
    assert small.value.code == "too_many_pages"


@pytest.mark.slow
def test_cli_embed_dataset_pdf(
    pdf_folder: Path, scale_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards"
    args = ["embed-dataset", str(pdf_folder), "--out", str(out), "--model", scale_model]
    args += ["--device", "cpu", "--quiet", "--json", "--pdf"]
    assert main(args) == 1  # the two hostile PDFs failed; the rest is written
    summary = json.loads(capsys.readouterr().out)
    assert summary["embedded"] == len(loader_documents(pdf_folder))
    assert sorted(e["code"] for e in summary["errors"]) == ["encrypted", "truncated"]
    assert all(e["input"].endswith(".pdf") for e in summary["errors"])
