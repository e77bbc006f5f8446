"""PDFs made in the tests with pypdfium2 (and by hand): charts, text, figures, hostile files.

Every drawing is placed in PDF user space (points, origin bottom-left); the constants below
say where, so the tests can check what the loader reports against what was drawn.
"""

from __future__ import annotations

import ctypes
import io
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageDraw

#: US Letter, in points.
PAGE_W, PAGE_H = 612.0, 792.0
#: Page 1: the bar chart's bars (x, y, w, h) and colours; the title.
BARS = [(100.0 + 80 * i, 100.0, 50.0, h) for i, h in enumerate((120.0, 240.0, 180.0, 360.0))]
BAR_COLOURS = [(220, 40, 40), (40, 160, 40), (40, 40, 220), (230, 160, 20)]
TITLE = "Quarterly revenue by region"
#: Page 2: a JPEG figure and a PNG figure (x, y, w, h on the page) and their own pixel sizes;
#: a logo too small to be a figure.
JPEG_BOX = (72.0, 480.0, 288.0, 216.0)
JPEG_PIXELS = (240, 180)
PNG_BOX = (360.0, 100.0, 180.0, 180.0)
PNG_PIXELS = (96, 96)
PNG_COLOUR = (0, 200, 120)
LOGO_BOX = (560.0, 760.0, 24.0, 24.0)
CAPTION = "Figure 1: sales funnel"
#: Page 3: a landscape page (612 x 300 points) with /Rotate 90: displayed 300 wide, 612 high.
ROTATED_W, ROTATED_H = 612.0, 300.0


def add_text(pdf: pdfium.PdfDocument, page: pdfium.PdfPage, text: str, x: float, y: float) -> None:
    """Draw ``text`` in Helvetica 14 at ``(x, y)``."""
    obj = pdfium_c.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", ctypes.c_float(14))
    buffer = ctypes.create_string_buffer((text + "\x00").encode("utf-16-le"))
    pdfium_c.FPDFText_SetText(obj, ctypes.cast(buffer, ctypes.POINTER(pdfium_c.FPDF_WCHAR)))
    pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, x, y)
    pdfium_c.FPDFPage_InsertObject(page.raw, obj)


def add_rect(page: pdfium.PdfPage, box: tuple[float, ...], rgb: tuple[int, int, int]) -> None:
    """A filled rectangle (a bar of a chart)."""
    obj = pdfium_c.FPDFPageObj_CreateNewRect(*box)
    pdfium_c.FPDFPageObj_SetFillColor(obj, *rgb, 255)
    pdfium_c.FPDFPath_SetDrawMode(obj, pdfium_c.FPDF_FILLMODE_ALTERNATE, 0)
    pdfium_c.FPDFPage_InsertObject(page.raw, obj)


def add_image(
    pdf: pdfium.PdfDocument,
    page: pdfium.PdfPage,
    image: Image.Image,
    box: tuple[float, float, float, float],
    *,
    jpeg: bool,
) -> None:
    """Embed ``image`` (as a JPEG stream, or as raw pixels: PNG-like Flate) drawn in ``box``."""
    obj = pdfium.PdfImage.new(pdf)
    if jpeg:
        data = io.BytesIO()
        image.save(data, format="JPEG", quality=90)
        data.seek(0)
        obj.load_jpeg(data, inline=True)
    else:
        obj.set_bitmap(pdfium.PdfBitmap.from_pil(image))
    x, y, w, h = box
    obj.set_matrix(pdfium.PdfMatrix().scale(w, h).translate(x, y))
    page.insert_obj(obj)


def jpeg_figure() -> Image.Image:
    """The JPEG figure: a red ellipse on blue."""
    image = Image.new("RGB", JPEG_PIXELS, (30, 90, 200))
    ImageDraw.Draw(image).ellipse((20, 20, 220, 160), fill=(230, 30, 30))
    return image


def report_bytes() -> bytes:
    """A 3-page report: a bar chart with a title; a page with two figures, a logo and a
    caption; a rotated landscape page with text."""
    pdf = pdfium.PdfDocument.new()
    chart = pdf.new_page(PAGE_W, PAGE_H)
    add_text(pdf, chart, TITLE, 72, 720)
    for box, colour in zip(BARS, BAR_COLOURS, strict=True):
        add_rect(chart, box, colour)
    chart.gen_content()
    figures = pdf.new_page(PAGE_W, PAGE_H)
    add_image(pdf, figures, jpeg_figure(), JPEG_BOX, jpeg=True)
    add_image(pdf, figures, Image.new("RGB", PNG_PIXELS, PNG_COLOUR), PNG_BOX, jpeg=False)
    add_image(pdf, figures, Image.new("RGB", (12, 12), (0, 0, 0)), LOGO_BOX, jpeg=False)
    add_text(pdf, figures, CAPTION, 72, 450)
    figures.gen_content()
    rotated = pdf.new_page(ROTATED_W, ROTATED_H)
    add_text(pdf, rotated, "Appendix: a landscape table", 40, 150)
    rotated.gen_content()
    rotated.set_rotation(90)
    out = io.BytesIO()
    pdf.save(out)
    pdf.close()
    return out.getvalue()


def many_pages_bytes(pages: int) -> bytes:
    """``pages`` tiny (36 x 36 point) pages, each with its number as text. Written by hand:
    PDFium's ``new_page`` slows down with the page count (2,000 pages took minutes)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(pages))
        + b"] /Count %d >>" % pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for number in range(1, pages + 1):
        stream = b"BT /F1 12 Tf 4 12 Td (%d) Tj ET" % number
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 36 36] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * (number - 1))
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return _assemble(objects, b"")


def _assemble(objects: list[bytes], trailer_extra: bytes) -> bytes:
    """A PDF file of ``objects`` (numbered from 1, the first the catalog) with its xref."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R" % (len(objects) + 1) + trailer_extra
    out += b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def encrypted_bytes() -> bytes:
    """A one-page PDF encrypted with the standard security handler (RC4, revision 2) whose
    user password is not empty: PDFium asks for a password. Written by hand: neither Pillow
    nor PDFium writes encrypted files."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 /O <"
        + b"11" * 32
        + b"> /U <"
        + b"22" * 32
        + b"> >>",
    ]
    trailer = b" /Encrypt 4 0 R /ID [<" + b"ab" * 16 + b"> <" + b"ab" * 16 + b">]"
    return _assemble(objects, trailer)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def top_left_box(
    box: tuple[float, float, float, float], page_height: float = PAGE_H
) -> list[float]:
    """A drawn ``(x, y, w, h)`` box (origin bottom-left) as the loader's ``bbox``
    ``[x0, y0, x1, y1]`` (origin top-left)."""
    x, y, w, h = box
    return [x, page_height - (y + h), x + w, page_height - y]
