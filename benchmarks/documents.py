"""The cost of a PDF page: listing, rendering, embedding (EfficientNet-Lite0), storage.

Makes a ``--pages``-page PDF that looks like a report (per page: a title, lines of text, a
bar chart drawn with paths and one photo from scikit-image embedded as a JPEG figure), then
measures, per page, on this machine:

- ``list``: :class:`~langchain_image_embeddings.documents.PDFImageLoader` (hash the file, each
  page's size, text layer and figures; nothing rendered);
- ``render_dpi``: ``read_image_source("report.pdf#page=N")``: the page rendered at
  ``pdf_dpi`` (150) and encoded as PNG, what thumbnails and ``image_rag_message`` read;
- ``embed_pages``: ``embed_images`` of the page addresses (each page rendered at the smallest
  scale that covers the model's input, then the model), and, side by side, ``embed_png`` the
  same pages pre-rendered to PNG files at 150 dpi (decode + model only): their ratio is what
  rendering adds to embedding;
- ``add_images``: ``FAISSImageStore.add_images(["report.pdf"])`` end to end (list, plan,
  render, embed, write; pages and figures), per document written;
- storage: bytes on disk of the saved FAISS store per record, and the JSON metadata per page.

Run::

    PYTHONPATH=. python benchmarks/documents.py --pages 24

Prints one JSON line. Timings from a busy shared machine vary run to run: compare the
ratios measured side by side in one run.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import tempfile
import time
from pathlib import Path


def make_report(path: Path, pages: int) -> None:
    """A report-like PDF: title, text lines, a bar chart and a JPEG photo per page."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    from langchain_image_embeddings.samples import sample_photos

    photos = list(sample_photos().values())
    pdf = pdfium.PdfDocument.new()

    def text(page: pdfium.PdfPage, line: str, x: float, y: float, size: float) -> None:
        obj = pdfium_c.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", ctypes.c_float(size))
        buffer = ctypes.create_string_buffer((line + "\x00").encode("utf-16-le"))
        pdfium_c.FPDFText_SetText(obj, ctypes.cast(buffer, ctypes.POINTER(pdfium_c.FPDF_WCHAR)))
        pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, x, y)
        pdfium_c.FPDFPage_InsertObject(page.raw, obj)

    for number in range(1, pages + 1):
        page = pdf.new_page(612, 792)
        text(page, f"Section {number}: quarterly results", 72, 730, 20)
        for line in range(18):
            words = f"Line {line} of page {number}: revenue, margin and growth by region."
            text(page, words, 72, 700 - 14 * line, 10)
        for bar in range(6):
            rect = pdfium_c.FPDFPageObj_CreateNewRect(80 + 40 * bar, 300, 28, 40 + 25 * bar)
            pdfium_c.FPDFPageObj_SetFillColor(rect, 40 * bar, 120, 200 - 30 * bar, 255)
            pdfium_c.FPDFPath_SetDrawMode(rect, pdfium_c.FPDF_FILLMODE_ALTERNATE, 0)
            pdfium_c.FPDFPage_InsertObject(page.raw, rect)
        photo = photos[number % len(photos)].convert("RGB")
        photo.thumbnail((800, 800))
        data = io.BytesIO()
        photo.save(data, format="JPEG", quality=85)
        data.seek(0)
        image = pdfium.PdfImage.new(pdf)
        image.load_jpeg(data, inline=True)
        width = 220.0
        height = width * photo.height / photo.width
        image.set_matrix(pdfium.PdfMatrix().scale(width, height).translate(340, 300))
        page.insert_obj(image)
        page.gen_content()
        page.close()
    with open(path, "wb") as fh:
        pdf.save(fh)
    pdf.close()


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from langchain_image_embeddings import FAISSImageStore, ImageEmbeddings
    from langchain_image_embeddings.documents import PDFImageLoader
    from langchain_image_embeddings.images import read_image_source

    torch.set_num_threads(args.threads)
    embeddings = ImageEmbeddings("timm:efficientnet_lite0", device="cpu", batch_size=32)
    embeddings.encoder.load()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        report = root / "report.pdf"
        make_report(report, args.pages)
        pages = [f"{report}#page={n}" for n in range(1, args.pages + 1)]

        start = time.perf_counter()
        docs = PDFImageLoader(report).load()
        list_s = time.perf_counter() - start
        page_docs = [d for d in docs if d.metadata["kind"] == "page"]

        pngs = []
        start = time.perf_counter()
        for number, address in enumerate(pages, start=1):
            source = read_image_source(address)
            png = root / f"page-{number:04d}.png"
            png.write_bytes(source.data)
            pngs.append(str(png))
        render_s = time.perf_counter() - start
        png_bytes = sum(os.path.getsize(p) for p in pngs) / len(pngs)

        embeddings.embed_images(pngs[:2])  # warm-up: the model, not the pages
        timings: dict[str, list[float]] = {"pages": [], "png": []}
        for _ in range(2):  # alternate, so both see the same machine load
            for name, inputs in (("pages", pages), ("png", pngs)):
                start = time.perf_counter()
                embeddings.embed_images(inputs)
                timings[name].append(time.perf_counter() - start)
        embed_pages_s, embed_png_s = min(timings["pages"]), min(timings["png"])

        store_dir = root / "store"
        store = FAISSImageStore(embeddings, store_dir)
        start = time.perf_counter()
        result = store.add_images([str(report)])
        store.persist()
        add_s = time.perf_counter() - start
        assert not result.failures, result.failures
        records = len(result.added)
        store_bytes = folder_bytes(store_dir)
        metadata_bytes = sum(len(json.dumps(d.metadata)) for d in page_docs) / len(page_docs)

    ms = 1000.0 / args.pages
    print(
        json.dumps(
            {
                "pages": args.pages,
                "records": records,
                "threads": args.threads,
                "list_ms_per_page": round(list_s * ms, 2),
                "render_150dpi_png_ms_per_page": round(render_s * ms, 1),
                "png_kb_per_page_150dpi": round(png_bytes / 1024, 1),
                "embed_pages_ms_per_page": round(embed_pages_s * ms, 1),
                "embed_prerendered_png_ms_per_page": round(embed_png_s * ms, 1),
                "pages_over_png_ratio": round(embed_pages_s / embed_png_s, 2),
                "add_images_ms_per_record": round(add_s * 1000 / records, 1),
                "store_bytes_per_record": round(store_bytes / records),
                "metadata_json_bytes_per_page": round(metadata_bytes),
            }
        )
    )


if __name__ == "__main__":
    main()
