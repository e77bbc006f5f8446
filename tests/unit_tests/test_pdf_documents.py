"""PDF pages and figures as images: addresses, rendering, figures, the loader, hostile files.

Every PDF is made here (``pdf_samples``): a bar chart with a title, a page with a JPEG and a
PNG figure, a logo and a caption, a rotated landscape page, an encrypted file, a truncated
file and a 2,000-page file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2")

from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.documents import PDFImageLoader, PDFOptions, truncate_text
from langchain_image_embeddings.errors import IMAGE_ERROR_CODES, ImageLoadError
from langchain_image_embeddings.images import (
    ImageLoadOptions,
    load_image,
    page_address,
    parse_address,
    read_image_bytes,
    read_image_source,
)
from tests.unit_tests import pdf_samples as samples


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return samples.write(tmp_path_factory.mktemp("pdf") / "report.pdf", samples.report_bytes())


@pytest.fixture(scope="module")
def report_docs(report: Path) -> list:  # type: ignore[type-arg]
    return PDFImageLoader(report).load()


def pixel_at(image, x_pt: float, y_pt: float, page_h: float, dpi: float = 150.0):  # type: ignore[no-untyped-def]
    """The rendered pixel under PDF point ``(x, y)`` (origin bottom-left)."""
    scale = dpi / 72
    return image.getpixel((int(x_pt * scale), int((page_h - y_pt) * scale)))


def test_addresses_parse_and_print() -> None:
    assert parse_address("a/b.pdf#page=3") == ("a/b.pdf", 3, None)
    assert parse_address("file:///a/b.pdf#page=3&figure=2") == ("file:///a/b.pdf", 3, 2)
    for not_an_address in ("a.pdf", "a.pdf#page=0", "a.pdf#page=-1", "a.pdf#page=x", "a#b.jpg"):
        assert parse_address(not_an_address) is None
    assert page_address("a.pdf", 2, 5) == "a.pdf#page=2&figure=5"


def test_pages_in_order_with_size_rotation_and_text(report: Path, report_docs: list) -> None:  # type: ignore[type-arg]
    pages = [d for d in report_docs if d.metadata["kind"] == "page"]
    assert [d.metadata["page"] for d in pages] == [1, 2, 3]
    assert [d.page_content for d in pages] == [f"{report}#page={n}" for n in (1, 2, 3)]
    assert all(
        d.metadata["page_count"] == 3 and d.metadata["document"] == str(report) for d in pages
    )
    chart, figures, rotated = (d.metadata for d in pages)
    assert (chart["page_width"], chart["page_height"], chart["rotation"]) == (612, 792, 0)
    # /Rotate 90 turns the 612 x 300 landscape page into a 300 x 612 page as displayed
    assert (rotated["page_width"], rotated["page_height"], rotated["rotation"]) == (300, 612, 90)
    assert (rotated["width"], rotated["height"]) == (625, 1275)  # at 150 dpi
    assert chart["text"] == samples.TITLE
    assert samples.CAPTION in figures["text"]
    assert "landscape table" in rotated["text"]


def test_figures_are_documents_with_the_boxes_they_were_drawn_in(
    report: Path, report_docs: list
) -> None:  # type: ignore[type-arg]
    figures = [d.metadata for d in report_docs if d.metadata["kind"] == "figure"]
    # the 24-point logo is left out (min_figure_side: 72 points); the others follow the page
    assert [(f["page"], f["figure"]) for f in figures] == [(2, 1), (2, 2)]
    jpeg, png = figures
    assert jpeg["bbox"] == pytest.approx(samples.top_left_box(samples.JPEG_BOX), abs=0.02)
    assert png["bbox"] == pytest.approx(samples.top_left_box(samples.PNG_BOX), abs=0.02)
    assert (jpeg["width"], jpeg["height"]) == samples.JPEG_PIXELS
    assert (png["width"], png["height"]) == samples.PNG_PIXELS
    assert jpeg["source"] == f"{report}#page=2&figure=1"
    # the logo is still addressable (figure 3): the index does not depend on the filter
    assert load_image(f"{report}#page=2&figure=3").size == (12, 12)
    everything = PDFImageLoader(
        report, pdf_options=PDFOptions(min_figure_side=1, min_figure_pixels=1)
    )
    assert [d.metadata.get("figure") for d in everything.load() if d.metadata["page"] == 2] == [
        None,
        1,
        2,
        3,
    ]


def test_a_figure_address_gives_the_figures_own_pixels(report: Path) -> None:
    png = load_image(f"{report}#page=2&figure=2")
    assert png.size == samples.PNG_PIXELS and png.getpixel((10, 10)) == samples.PNG_COLOUR
    jpeg = load_image(f"{report}#page=2&figure=1")
    assert jpeg.size == samples.JPEG_PIXELS
    red, green, blue = jpeg.getpixel((120, 90))  # the ellipse's centre, JPEG-compressed
    assert red > 180 and green < 80 and blue < 80


def test_a_page_address_renders_the_drawn_chart(report: Path) -> None:
    page = load_image(f"{report}#page=1")
    assert page.mode == "RGB" and page.size == (1275, 1651)
    for (x, y, w, h), colour in zip(samples.BARS, samples.BAR_COLOURS, strict=True):
        assert pixel_at(page, x + w / 2, y + h / 2, samples.PAGE_H) == colour
    assert pixel_at(page, 50, 50, samples.PAGE_H) == (255, 255, 255)
    # the figure page shows the PNG figure where it was drawn
    figures = load_image(f"{report}#page=2")
    x, y, w, h = samples.PNG_BOX
    assert pixel_at(figures, x + w / 2, y + h / 2, samples.PAGE_H) == samples.PNG_COLOUR


def test_rendering_follows_dpi_pixel_caps_and_draft_size(report: Path) -> None:
    address = f"{report}#page=1"
    assert load_image(address, ImageLoadOptions(pdf_dpi=72)).size == (612, 792)
    # a page over max_pixels is rendered smaller, within the cap, not refused
    capped = load_image(address, ImageLoadOptions(max_pixels=100_000))
    assert capped.width * capped.height <= 100_000 and capped.width > 250
    assert read_image_source(address, ImageLoadOptions(max_pixels=100_000)).metadata["dpi"] < 40
    # the embeddings ask for a draft: the smallest render still covering it
    draft = load_image(address, draft_size=(224, 224))
    assert draft.width >= 224 and draft.height >= 224 and draft.width < 240
    # a figure over max_pixels is refused like an image
    with pytest.raises(ImageLoadError) as info:
        load_image(f"{report}#page=2&figure=1", ImageLoadOptions(max_pixels=1_000))
    assert info.value.code == "decompression_bomb"


def test_read_image_source_describes_a_page_like_the_loader(
    report: Path, report_docs: list
) -> None:  # type: ignore[type-arg]
    for doc in report_docs:
        read = read_image_source(doc.page_content)
        listed = {k: v for k, v in doc.metadata.items() if k not in ("text", "text_truncated")}
        assert {k: v for k, v in read.metadata.items() if k != "bytes"} == listed
        assert read.data[:8] == b"\x89PNG\r\n\x1a\n" and read.metadata["bytes"] == len(read.data)
        assert load_image(read).size == (read.metadata["width"], read.metadata["height"])
    assert read_image_bytes(f"{report}#page=3") == read_image_source(f"{report}#page=3").data
    # a relative address is recorded with the absolute path, as image files are
    cwd = os.getcwd()
    os.chdir(report.parent)
    try:
        assert read_image_source("report.pdf#page=1").source == f"{report}#page=1"
    finally:
        os.chdir(cwd)


def test_content_hashes_follow_the_file_bytes_and_page_number(report: Path, tmp_path: Path) -> None:
    first = {d.page_content: d.metadata["sha256"] for d in PDFImageLoader(report).load()}
    again = {d.page_content: d.metadata["sha256"] for d in PDFImageLoader(report).load()}
    assert first == again and len(set(first.values())) == len(first)
    # the same bytes at another path: the same hashes (the content id does not hold the path)
    copy = tmp_path / "copy.pdf"
    shutil.copy(report, copy)
    copied = [d.metadata["sha256"] for d in PDFImageLoader(copy).load()]
    assert copied == list(first.values())
    # a changed file changes every page's hash
    samples.write(copy, report.read_bytes() + b"\n% an appended comment\n")
    changed = [d.metadata["sha256"] for d in PDFImageLoader(copy).load()]
    assert not set(changed) & set(first.values())


def test_text_is_tidied_and_cut_at_a_word(report: Path) -> None:
    assert truncate_text("a  b\r\n\r\n\r\n\r\nc", 100) == ("a b\n\nc", False)
    text, cut = truncate_text("alpha beta gamma delta", 13)
    assert (text, cut) == ("alpha beta", True)
    docs = PDFImageLoader(report, pdf_options=PDFOptions(max_text_chars=10)).load()
    assert docs[0].metadata["text"] == "Quarterly" and docs[0].metadata["text_truncated"] is True
    none = PDFImageLoader(report, pdf_options=PDFOptions(max_text_chars=0, figures=False)).load()
    assert [("text" in d.metadata, d.metadata["kind"]) for d in none] == [(False, "page")] * 3


def hostile_folder(root: Path) -> dict[str, Path]:
    report = samples.report_bytes()
    return {
        "good": samples.write(root / "good.pdf", report),
        "encrypted": samples.write(root / "encrypted.pdf", samples.encrypted_bytes()),
        "truncated": samples.write(root / "truncated.pdf", report[: len(report) // 2]),
        "damaged": samples.write(
            root / "damaged.pdf", report[:200] + b"\x00" * 300 + report[-120:]
        ),
        "not_a_pdf": samples.write(root / "photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        "empty": samples.write(root / "empty.pdf", b""),
    }


def test_hostile_pdfs_are_reported_per_file_and_the_rest_loads(tmp_path: Path) -> None:
    files = hostile_folder(tmp_path)
    loader = PDFImageLoader(tmp_path)
    docs = loader.load()
    assert {d.metadata["document"] for d in docs} == {str(files["good"])}
    assert len(docs) == 5  # 3 pages + 2 figures
    codes = {Path(e.source).name: e.code for e in loader.failures}
    assert codes == {
        "encrypted.pdf": "encrypted",
        "truncated.pdf": "truncated",
        "damaged.pdf": "corrupt",
        "photo.pdf": "unsupported_format",
        "empty.pdf": "empty",
    }
    assert set(codes.values()) <= IMAGE_ERROR_CODES
    with pytest.raises(ImageLoadError) as info:
        PDFImageLoader(files["encrypted"], on_error="raise").load()
    assert info.value.code == "encrypted" and "password" in info.value.reason
    # the same failures through a page address
    with pytest.raises(ImageLoadError) as info:
        load_image(f"{files['truncated']}#page=1")
    assert info.value.code == "truncated"


def test_a_truncated_pdf_reads_what_pdfium_recovers_only_when_asked(tmp_path: Path) -> None:
    report = samples.report_bytes()
    cut = samples.write(tmp_path / "cut.pdf", report[:-10])  # the tail of startxref and %%EOF
    with pytest.raises(ImageLoadError) as info:
        PDFImageLoader(cut, on_error="raise").load()
    assert info.value.code == "truncated"
    recovered = PDFImageLoader(cut, load_options=ImageLoadOptions(allow_truncated=True)).load()
    assert [d.metadata["page"] for d in recovered if d.metadata["kind"] == "page"] == [1, 2, 3]
    # half a file: nothing PDFium can parse, still reported as truncated
    half = samples.write(tmp_path / "half.pdf", report[: len(report) // 2])
    loader = PDFImageLoader(half, load_options=ImageLoadOptions(allow_truncated=True))
    assert loader.load() == [] and [e.code for e in loader.failures] == ["truncated"]


def test_two_thousand_pages_load_in_order_and_the_page_cap_refuses(tmp_path: Path) -> None:
    many = samples.write(tmp_path / "many.pdf", samples.many_pages_bytes(2000))
    docs = PDFImageLoader(many).load()
    assert [d.metadata["page"] for d in docs] == list(range(1, 2001))
    assert [d.metadata["text"] for d in docs[:3]] + [docs[-1].metadata["text"]] == [
        "1",
        "2",
        "3",
        "2000",
    ]
    assert len({d.metadata["sha256"] for d in docs}) == 2000
    assert load_image(f"{many}#page=2000").size == (75, 75)
    capped = PDFImageLoader(many, load_options=ImageLoadOptions(max_pdf_pages=1999))
    assert capped.load() == []
    assert [e.code for e in capped.failures] == ["too_many_pages"]
    assert "2000 pages" in capped.failures[0].reason


def test_the_time_cap_fails_the_whole_file(report: Path) -> None:
    loader = PDFImageLoader(report, pdf_options=PDFOptions(max_seconds=1e-9))
    assert loader.load() == []
    assert [e.code for e in loader.failures] == ["timeout"]


def test_bad_addresses_and_a_bare_pdf_are_refused_with_codes(report: Path) -> None:
    cases = {
        f"{report}#page=4": "not_found",
        f"{report}#page=1&figure=1": "not_found",
        f"{report.parent / 'missing.pdf'}#page=1": "not_found",
        "https://example.org/a.pdf#page=1": "remote_disabled",  # allow_remote is off
        "s3://bucket/a.pdf#page=1": "unsupported_scheme",
        "ftp://example.org/a.pdf#page=1": "unsupported_scheme",
        str(report): "unsupported_format",
    }
    for source, code in cases.items():
        with pytest.raises(ImageLoadError) as info:
            read_image_source(source)
        assert info.value.code == code, source
    with pytest.raises(ImageLoadError) as info:
        load_image(str(report))
    assert info.value.code == "unsupported_format"
    with pytest.raises(ImageLoadError) as bare:
        read_image_source(str(report))
    assert "#page=N" in bare.value.reason


def test_root_confinement_applies_to_page_addresses(report: Path, tmp_path: Path) -> None:
    inside = ImageLoadOptions(root=str(report.parent))
    assert load_image(
        f"{report}#page=1", ImageLoadOptions(root=str(report.parent), pdf_dpi=10)
    ).size
    assert read_image_source(f"{report}#page=3", inside).metadata["page"] == 3
    with pytest.raises(ImageLoadError) as info:
        load_image(f"{report}#page=1", ImageLoadOptions(root=str(tmp_path)))
    assert info.value.code == "outside_root"


def test_the_directory_loader_takes_pdfs_only_when_asked(tmp_path: Path, report: Path) -> None:
    shutil.copy(report, tmp_path / "report.pdf")
    from PIL import Image

    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "photo.png")
    plain = ImageDirectoryLoader(tmp_path).load()
    assert [Path(d.metadata["source"]).name for d in plain] == ["photo.png"]
    both = ImageDirectoryLoader(tmp_path, pdf=True).load()
    names = [Path(d.metadata["source"]).name for d in both]
    assert names == [
        "photo.png",
        "report.pdf#page=1",
        "report.pdf#page=2",
        "report.pdf#page=2&figure=1",
        "report.pdf#page=2&figure=2",
        "report.pdf#page=3",
    ]
    pages_only = ImageDirectoryLoader(tmp_path, pdf=PDFOptions(figures=False), glob="*.pdf")
    assert [d.metadata["kind"] for d in pages_only.load()] == ["page"] * 3


def test_pages_render_the_same_from_many_threads(report: Path, tmp_path: Path) -> None:
    """PDFium is not thread-safe: decode threads and thumbnail workers share one lock."""
    from concurrent.futures import ThreadPoolExecutor

    many = samples.write(tmp_path / "many.pdf", samples.many_pages_bytes(40))
    addresses = [f"{report}#page={n}" for n in (1, 2, 3)] + [f"{report}#page=2&figure=1"]
    addresses += [f"{many}#page={n}" for n in range(1, 41)]
    options = ImageLoadOptions(pdf_dpi=40)
    serial = [load_image(a, options).tobytes() for a in addresses]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda a: load_image(a, options).tobytes(), addresses * 3))
    assert threaded == serial * 3


def test_file_uri_addresses_and_option_checks(report: Path) -> None:
    uri = f"{report.as_uri()}#page=2&figure=2"
    read = read_image_source(uri)
    assert read.source == uri and read.metadata["document"] == report.as_uri()
    assert read.sha256 == read_image_source(f"{report}#page=2&figure=2").sha256
    assert load_image(uri).getpixel((0, 0)) == samples.PNG_COLOUR
    for bad in ({"pdf_dpi": 0}, {"pdf_dpi": "150"}, {"max_pdf_pages": 0}):
        with pytest.raises(ValueError, match="ImageLoadOptions"):
            ImageLoadOptions(**bad)  # type: ignore[arg-type]
    for bad_pdf in ({"pages": False, "figures": False}, {"max_seconds": 0}, {"max_text_chars": -1}):
        with pytest.raises(ValueError, match="PDFOptions"):
            PDFOptions(**bad_pdf)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "breaks", "doing"),
    [
        (lambda pdf: pdf.text(2), "get_textpage", "read the text"),
        (lambda pdf: pdf.figures(2), "get_objects", "list the images"),
        (lambda pdf: pdf.render(2, ImageLoadOptions()), "render", "render the page"),
        (lambda pdf: pdf.page_info(2), "get_size", "read the page size"),
    ],
)
def test_a_pdfium_failure_on_a_page_is_corrupt_names_the_page_and_closes_it(
    report: Path,
    monkeypatch: pytest.MonkeyPatch,
    call,  # type: ignore[no-untyped-def]
    breaks: str,
    doing: str,
) -> None:
    import pypdfium2 as pdfium

    from langchain_image_embeddings.images import open_pdf_file

    closed: list[int] = []
    real_close = pdfium.PdfPage.close

    def counting_close(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        closed.append(1)
        return real_close(self, *args, **kwargs)

    def broken(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise pdfium.PdfiumError("simulated damage")

    with open_pdf_file(report, ImageLoadOptions()) as pdf:
        monkeypatch.setattr(pdfium.PdfPage, "close", counting_close)
        monkeypatch.setattr(pdfium.PdfPage, breaks, broken)
        with pytest.raises(ImageLoadError) as info:
            call(pdf)
    assert info.value.code == "corrupt"
    assert info.value.source == page_address(report, 2)
    assert info.value.reason.startswith(f"PDFium cannot {doing}: ")
    assert "simulated damage" in info.value.reason
    assert closed, "the page handle was not closed"


def test_a_missing_page_is_not_found_from_every_page_operation(report: Path) -> None:
    from langchain_image_embeddings.images import open_pdf_file

    with open_pdf_file(report, ImageLoadOptions()) as pdf:
        for call in (pdf.text, pdf.figures, pdf.page_info):
            with pytest.raises(ImageLoadError) as info:
                call(9)
            assert info.value.code == "not_found", call
            assert info.value.source == page_address(report, 9)
        with pytest.raises(ImageLoadError) as extract:
            pdf.extract(1, 99, ImageLoadOptions())
    assert extract.value.code == "not_found"
    assert extract.value.source == page_address(report, 1, 99)


def test_a_page_address_over_http_reads_the_page_under_the_remote_policy(report: Path) -> None:
    import hashlib

    from langchain_image_embeddings.images import page_digest
    from tests.unit_tests.image_server import CountingImageServer

    data = report.read_bytes()
    server = CountingImageServer({"/docs/report.pdf": data})
    try:
        url = server.url("/docs/report.pdf")
        allowed = ImageLoadOptions(allow_remote=True, allowed_hosts=("127.0.0.1",))
        remote = read_image_source(f"{url}#page=2", allowed)
        local = read_image_source(f"{report}#page=2")
        assert server.requests == {"/docs/report.pdf": 1}  # fetched once for the page
        assert remote.data == local.data  # the same page rendered
        assert remote.metadata["source"] == f"{url}#page=2"
        assert remote.metadata["sha256"] == local.metadata["sha256"]  # same content id
        assert remote.metadata["sha256"] == page_digest(hashlib.sha256(data).hexdigest(), 2)
        assert "mtime" not in remote.metadata
        figure = load_image(f"{url}#page=2&figure=2", allowed)
        assert figure.size == samples.PNG_PIXELS
        assert figure.getpixel((10, 10)) == samples.PNG_COLOUR
        refused = {
            "remote_disabled": ImageLoadOptions(),
            "blocked_url": ImageLoadOptions(allow_remote=True),  # loopback is not public
            "too_large": ImageLoadOptions(
                allow_remote=True, allowed_hosts=("127.0.0.1",), max_bytes=len(data) // 2
            ),
        }
        for code, options in refused.items():
            with pytest.raises(ImageLoadError) as info:
                read_image_source(f"{url}#page=1", options)
            assert info.value.code == code
            assert info.value.source.startswith(url)
        with pytest.raises(ImageLoadError) as missing:
            read_image_source(f"{server.url('/nope.pdf')}#page=1", allowed)
        assert missing.value.code == "fetch_failed"
    finally:
        server.close()
