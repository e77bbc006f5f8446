"""PDF pages and figures as images: addresses, opening under caps, rendering, extraction.

A page or a figure of a PDF (a local file, or an ``http(s)://`` URL with
``allow_remote``) has an **address** that every reader of the package understands, the PDF
open-parameter fragment (1-based): ``docs/report.pdf#page=3`` is the third page rendered at ``ImageLoadOptions.pdf_dpi``; ``docs/report.pdf#page=3&figure=2`` is
the second image object drawn on that page, at its own resolution. :func:`parse_address`
recognises them, :func:`page_address` writes them, and
:func:`~langchain_image_embeddings.images.read_image_source` /
:func:`~langchain_image_embeddings.images.load_image` read them through
:func:`read_address` / :func:`load_address`, so stores, thumbnails and the RAG messages
work on pages with no special case.

What an address reads is described by the metadata of :func:`address_metadata`. Its
``sha256`` is the **page's content hash**: the SHA-256 of the PDF file's SHA-256, the page
and the figure number (not of the rendered PNG), so a page's content id follows the file's
bytes and the page number, is known without rendering, and does not change when PDFium's
rasteriser does. The PDF is parsed by PDFium through ``pypdfium2`` (extra ``[pdf]``),
under the caps of :class:`~langchain_image_embeddings.images.ImageLoadOptions`:
``max_bytes`` for the file, ``max_pdf_pages`` for the page count, ``max_pixels`` and
``max_aspect_ratio`` for each rendered page or extracted figure.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._files import (
    fetch_image_bytes,
    open_image_file,
    read_capped,
)
from langchain_image_embeddings.images._options import ImageLoadOptions, check_geometry

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "PDFIUM_LOCK",
    "PDF_SUFFIX",
    "FigureInfo",
    "OpenPDF",
    "PageAddress",
    "PageInfo",
    "absolute_document",
    "address_metadata",
    "is_pdf_path",
    "load_address",
    "load_address_hashed",
    "open_pdf",
    "open_pdf_file",
    "page_address",
    "page_digest",
    "parse_address",
    "read_address",
    "render_scale",
    "render_size",
]

#: The suffix of the files read as PDFs.
PDF_SUFFIX = ".pdf"

#: PDF user-space units per inch (a point).
POINTS_PER_INCH = 72.0

_ADDRESS = re.compile(
    r"^(?P<base>.+)#page=(?P<page>[1-9][0-9]{0,8})(?:&figure=(?P<figure>[1-9][0-9]{0,8}))?$"
)
_PDFIUM_PASSWORD = 4  # FPDF_ERR_PASSWORD
_PDFIUM_SECURITY = 5  # FPDF_ERR_SECURITY: an unsupported security handler
_FORMS_DEPTH = 15  # how deep image objects are looked for inside form XObjects

#: PDFium is not thread-safe, not even across documents: every call into it (the decode
#: threads of the pipeline, the thumbnail workers, a loader) holds this lock.
PDFIUM_LOCK = threading.RLock()

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _pdfium_locked(function: Callable[_P, _R]) -> Callable[_P, _R]:
    @wraps(function)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with PDFIUM_LOCK:
            return function(*args, **kwargs)

    return locked


def _owned_pil(bitmap: Any) -> Image.Image:
    """A PIL copy of a PDFium bitmap, which is then freed (``to_pil`` may share the buffer)."""
    try:
        image: Image.Image = bitmap.to_pil()
        return image.copy()
    finally:
        # safe: the pixels were copied; pypdfium2 >= 5.14 would log a warning for a bitmap
        # PDFium allocated (an extracted figure's) closed explicitly
        bitmap.warn_on_close = False
        bitmap.close()


class PageAddress(NamedTuple):
    """A parsed address: the PDF (as written), the 1-based page, the 1-based figure or ``None``."""

    document: str
    page: int
    figure: int | None = None


def parse_address(source: str) -> PageAddress | None:
    """The page (and figure) a string names, or ``None`` for anything else.

    Only the exact fragments ``#page=N`` and ``#page=N&figure=K`` (positive integers) make
    an address; any other ``#`` stays part of the path.

    Example:
        >>> parse_address("docs/a.pdf#page=3&figure=2")
        PageAddress(document='docs/a.pdf', page=3, figure=2)
        >>> parse_address("photos/cat.jpg") is None
        True
    """
    match = _ADDRESS.match(source)
    if match is None:
        return None
    figure = match.group("figure")
    return PageAddress(
        match.group("base"), int(match.group("page")), int(figure) if figure else None
    )


def page_address(document: str | os.PathLike[str], page: int, figure: int | None = None) -> str:
    """The address of a page (or of a figure on it) of a PDF.

    Example:
        >>> page_address("docs/a.pdf", 3), page_address("docs/a.pdf", 3, 2)
        ('docs/a.pdf#page=3', 'docs/a.pdf#page=3&figure=2')
    """
    base = f"{os.fspath(document)}#page={int(page)}"
    return base if figure is None else f"{base}&figure={int(figure)}"


def is_pdf_path(path: str | os.PathLike[str]) -> bool:
    """Whether a path names a PDF by its suffix (``.pdf``, any case).

    Example:
        >>> is_pdf_path("docs/Report.PDF"), is_pdf_path("docs/a.pdf#page=1")
        (True, False)
    """
    return os.fspath(path).lower().endswith(PDF_SUFFIX)


def page_digest(document_sha256: str, page: int, figure: int | None = None) -> str:
    """The content hash of a page or figure: SHA-256 over the file's hash and the numbers.

    Example:
        >>> page_digest("0" * 64, 1) != page_digest("0" * 64, 2)
        True
    """
    key = f"pdf-page\n{document_sha256}\n{int(page)}\n{0 if figure is None else int(figure)}"
    return hashlib.sha256(key.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class PageInfo:
    """One page as displayed (rotation applied), in PDF points (1/72 inch).

    Attributes:
        page: 1-based page number.
        width: Width in points, as displayed.
        height: Height in points, as displayed.
        rotation: The page's ``/Rotate`` in degrees (0, 90, 180, 270).
    """

    page: int
    width: float
    height: float
    rotation: int


@dataclass(frozen=True)
class FigureInfo:
    """An image object drawn on a page.

    Attributes:
        figure: 1-based index among the page's image objects, in drawing order (form
            XObjects included): the ``figure=`` of its address, independent of any filter.
        bbox: ``(x0, y0, x1, y1)`` in PDF points (1/72 inch) with the origin at the
            **top-left** corner of the page as displayed (rotation applied), y growing
            down: multiply by ``dpi / 72`` for pixels of the rendered page.
        pixel_width: Width of the image's own pixels.
        pixel_height: Height of the image's own pixels.
    """

    figure: int
    bbox: tuple[float, float, float, float]
    pixel_width: int
    pixel_height: int


class OpenPDF:
    """A PDF opened by PDFium under the caps (close it, or use :func:`open_pdf_file`).

    Attributes:
        source: The PDF as errors name it.
        sha256: The hex SHA-256 of the file's bytes.
        page_count: Number of pages (at most ``max_pdf_pages``).
        mtime: The file's modification time (``None`` for bytes).
        size: The file's size in bytes.
    """

    def __init__(self, document: Any, source: str, sha256: str, size: int, mtime: float | None):
        self._document = document
        self.source = source
        self.sha256 = sha256
        self.size = size
        self.mtime = mtime
        self.page_count = len(document)

    @_pdfium_locked
    def close(self) -> None:
        """Release PDFium's handle."""
        self._document.close()

    @_pdfium_locked
    def _page(self, page: int) -> Any:
        if not 1 <= page <= self.page_count:
            raise ImageLoadError(
                page_address(self.source, page),
                f"no page {page}: the PDF has {self.page_count} page(s)",
                "not_found",
            )
        try:
            return self._document[page - 1]
        except Exception as exc:  # PdfiumError: a page object PDFium cannot load
            raise ImageLoadError(
                page_address(self.source, page), f"PDFium cannot load the page: {exc}", "corrupt"
            ) from exc

    @contextmanager
    def _opened(self, page: int, doing: str, figure: int | None = None) -> Iterator[Any]:
        """A page's PDFium handle for one use, closed after it.

        Every page operation goes through here, so each fails the same way: an
        :class:`ImageLoadError` of its own (``not_found`` ...) passes unchanged, anything
        PDFium raises becomes ``corrupt`` naming the page's (or figure's) address and
        ``doing`` ("PDFium cannot render the page: ...").
        """
        with PDFIUM_LOCK:
            handle = self._page(page)
            try:
                yield handle
            except ImageLoadError:
                raise
            except Exception as exc:
                raise ImageLoadError(
                    page_address(self.source, page, figure),
                    f"PDFium cannot {doing}: {exc}",
                    "corrupt",
                ) from exc
            finally:
                handle.close()

    @_pdfium_locked
    def page_info(self, page: int) -> PageInfo:
        """Size and rotation of a 1-based page.

        Raises:
            ImageLoadError: ``not_found`` (no such page), ``corrupt``, ``bad_geometry``.
        """
        with self._opened(page, "read the page size") as handle:
            width, height = handle.get_size()
            info = PageInfo(page, float(width), float(height), int(handle.get_rotation()))
        if (
            not (math.isfinite(info.width) and math.isfinite(info.height))
            or min(info.width, info.height) <= 0
        ):
            raise ImageLoadError(
                page_address(self.source, page),
                f"invalid page size {info.width}x{info.height} points",
                "bad_geometry",
            )
        return info

    @_pdfium_locked
    def text(self, page: int) -> str:
        """The page's text layer (what PDFium extracts; empty for a scanned page)."""
        with self._opened(page, "read the text") as handle:
            textpage = handle.get_textpage()
            try:
                return str(textpage.get_text_range())
            finally:
                textpage.close()

    @_pdfium_locked
    def figures(self, page: int) -> list[FigureInfo]:
        """The image objects drawn on a page, in drawing order, with their boxes."""
        with self._opened(page, "list the images") as handle:
            return [
                _figure_info(handle, index, obj)
                for index, obj in enumerate(_image_objects(handle), start=1)
            ]

    @_pdfium_locked
    def render(
        self,
        page: int,
        options: ImageLoadOptions,
        draft_size: tuple[int, int] | None = None,
    ) -> Image.Image:
        """Render a page as RGB at ``options.pdf_dpi`` within ``max_pixels`` (see
        :func:`render_size`); with ``draft_size``, at the smallest scale covering it.

        Raises:
            ImageLoadError: ``not_found``, ``bad_geometry``, ``corrupt``.
        """
        info = self.page_info(page)
        address = page_address(self.source, page)
        scale = render_scale(info, options, draft_size)
        size = _pixels(info, scale)
        check_geometry(size, address, options)
        with self._opened(page, "render the page") as handle:
            image = _owned_pil(handle.render(scale=scale, may_draw_forms=False))
        return image if image.mode == "RGB" else image.convert("RGB")

    @_pdfium_locked
    def extract(self, page: int, figure: int, options: ImageLoadOptions) -> Image.Image:
        """The pixels of a page's ``figure``-th image object, as RGB, at their own size.

        Raises:
            ImageLoadError: ``not_found``, ``decompression_bomb``, ``bad_geometry``, ``corrupt``.
        """
        address = page_address(self.source, page, figure)
        with self._opened(page, "extract the image", figure) as handle:
            objects = list(_image_objects(handle))
            if not 1 <= figure <= len(objects):
                raise ImageLoadError(
                    address,
                    f"no figure {figure}: the page has {len(objects)} image(s)",
                    "not_found",
                )
            obj = objects[figure - 1]
            width, height = obj.get_px_size()
            check_geometry((int(width), int(height)), address, options)
            try:
                image = _owned_pil(obj.get_bitmap(render=False))
            except Exception:  # an unusual colour space or filter: let PDFium draw it
                image = _owned_pil(obj.get_bitmap(render=True))
        if image.mode in ("RGBA", "LA"):
            background = _background(image.size, options)
            background.paste(image, mask=image.getchannel("A"))
            return background
        return image if image.mode == "RGB" else image.convert("RGB")


def _background(size: tuple[int, int], options: ImageLoadOptions) -> Image.Image:
    from PIL import Image

    return Image.new("RGB", size, options.background)


def render_scale(
    info: PageInfo, options: ImageLoadOptions, draft_size: tuple[int, int] | None = None
) -> float:
    """Pixels per point a page is rendered at: ``pdf_dpi / 72``, lowered so the page fits
    ``max_pixels`` (a poster-sized page is rendered smaller, not refused), and with
    ``draft_size`` lowered to the smallest scale whose render still covers it."""
    scale = options.pdf_dpi / POINTS_PER_INCH
    if draft_size is not None:
        covering = max(draft_size[0] / info.width, draft_size[1] / info.height)
        scale = min(scale, covering)
    pixels = info.width * info.height * scale * scale
    if pixels > options.max_pixels:
        scale *= math.sqrt(options.max_pixels / pixels)
        while math.prod(_pixels(info, scale)) > options.max_pixels:  # the sizes round up
            scale *= 0.995
    return scale


def _pixels(info: PageInfo, scale: float) -> tuple[int, int]:
    # the rounding pypdfium2's PdfPage.render uses, so the size announced is the size rendered
    return max(1, math.ceil(info.width * scale)), max(1, math.ceil(info.height * scale))


def render_size(info: PageInfo, options: ImageLoadOptions) -> tuple[int, int]:
    """``(width, height)`` in pixels of a page rendered at ``pdf_dpi`` within the caps."""
    return _pixels(info, render_scale(info, options))


def _image_objects(page: Any) -> Iterator[Any]:
    import pypdfium2.raw as pdfium_c

    return iter(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=_FORMS_DEPTH))


def _figure_info(page: Any, index: int, obj: Any) -> FigureInfo:
    """An image object's box in top-left page points (rotation and crop box applied)."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    left, bottom, right, top = obj.get_bounds()
    width, height = page.get_size()
    # FPDF_PageToDevice maps page space to the displayed page (rotation, crop box) in whole
    # device units: a device 100x the page's size in points keeps 0.01 pt of precision.
    grain = 100
    xs: list[float] = []
    ys: list[float] = []
    for x, y in ((left, bottom), (left, top), (right, bottom), (right, top)):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(
            page.raw,
            0,
            0,
            round(width * grain),
            round(height * grain),
            0,
            ctypes.c_double(x),
            ctypes.c_double(y),
            ctypes.byref(dx),
            ctypes.byref(dy),
        )
        xs.append(dx.value / grain)
        ys.append(dy.value / grain)
    px_width, px_height = obj.get_px_size()
    bbox = (min(xs), min(ys), max(xs), max(ys))
    return FigureInfo(index, bbox, int(px_width), int(px_height))


@_pdfium_locked
def open_pdf(
    data: bytes, source: str, options: ImageLoadOptions, mtime: float | None = None
) -> OpenPDF:
    """Open PDF bytes with PDFium, under the caps.

    Raises:
        MissingDependencyError: ``pypdfium2`` is not installed (extra ``[pdf]``).
        ImageLoadError: ``empty``, ``too_large``, ``unsupported_format`` (not a PDF),
            ``encrypted`` (a password is needed), ``truncated`` (the file ends early),
            ``corrupt`` (PDFium cannot parse it) or ``too_many_pages`` (over
            ``max_pdf_pages``).
    """
    if not data:
        raise ImageLoadError(source, "no data", "empty")
    if len(data) > options.max_bytes:
        raise ImageLoadError(source, f"more than the {options.max_bytes}-byte limit", "too_large")
    if b"%PDF-" not in data[:1024]:
        raise ImageLoadError(source, "not a PDF (no %PDF- header)", "unsupported_format")
    truncated = b"%%EOF" not in data[-2048:]
    if truncated and not options.allow_truncated:
        raise ImageLoadError(
            source,
            "the PDF ends early (no %%EOF trailer); pass ImageLoadOptions(allow_truncated=True) "
            "to read what PDFium can recover",
            "truncated",
        )
    require("pypdfium2", "pdf")
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code in (_PDFIUM_PASSWORD, _PDFIUM_SECURITY):
            raise ImageLoadError(
                source, "the PDF is encrypted with a password: it cannot be read", "encrypted"
            ) from exc
        raise ImageLoadError(
            source, f"PDFium cannot parse the PDF: {exc}", "truncated" if truncated else "corrupt"
        ) from exc
    opened = OpenPDF(document, source, hashlib.sha256(data).hexdigest(), len(data), mtime)
    if opened.page_count > options.max_pdf_pages:
        pages = opened.page_count
        opened.close()
        raise ImageLoadError(
            source,
            f"{pages} pages exceeds the limit of {options.max_pdf_pages} (raise "
            "ImageLoadOptions.max_pdf_pages to accept it)",
            "too_many_pages",
        )
    if opened.page_count == 0:
        opened.close()
        raise ImageLoadError(source, "the PDF has no pages", "empty")
    return opened


def _local_path(document: str, options: ImageLoadOptions) -> str:
    """The file a page address's document names: a path or a ``file://`` URI."""
    if document[:7].lower() == "file://":
        parsed = urllib.parse.urlparse(document)
        if parsed.netloc not in ("", "localhost"):
            raise ImageLoadError(
                document, "file:// URIs must name a local path", "unsupported_scheme"
            )
        return urllib.request.url2pathname(parsed.path)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", document) or document[:5].lower() == "data:":
        raise ImageLoadError(
            document,
            "page addresses (#page=N) name PDF files (a path, file:// or http(s)://) only",
            "unsupported_scheme",
        )
    return document


def _is_http(document: str) -> bool:
    return document[:7].lower() == "http://" or document[:8].lower() == "https://"


def _fetch_pdf(url: str, options: ImageLoadOptions) -> bytes:
    """A remote PDF's bytes, under the same policy as a remote image: only with
    ``allow_remote``, through the SSRF guards, ``max_bytes``, ``timeout`` and
    ``total_timeout`` of :func:`~langchain_image_embeddings.images.fetch_image_bytes`."""
    if not options.allow_remote:
        raise ImageLoadError(
            url,
            "remote fetching is disabled; pass ImageLoadOptions(allow_remote=True) to enable it",
            "remote_disabled",
        )
    return fetch_image_bytes(url, options)


@contextmanager
def open_pdf_file(document: str | os.PathLike[str], options: ImageLoadOptions) -> Iterator[OpenPDF]:
    """Open a PDF (a path, a ``file://`` URI, or an ``http(s)://`` URL) under the guards
    and the caps.

    A file is read once (regular files only, ``max_bytes``, ``root`` confinement), a URL
    fetched once (only with ``allow_remote``, under the same SSRF guards, size cap and
    timeouts as a remote image), and hashed; PDFium parses those bytes.

    Raises:
        ImageLoadError: As :func:`open_pdf`, plus the file codes (``not_found``, ...).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import ImageLoadOptions, open_pdf_file

            with open_pdf_file("report.pdf", ImageLoadOptions()) as pdf:
                pdf.page_count, pdf.page_info(1)
    """
    name = os.fspath(document)
    mtime: float | None = None
    if _is_http(name):
        data = _fetch_pdf(name, options)
    else:
        path = _local_path(name, options)
        fh, st = open_image_file(path, options, source=name)
        with fh:
            data = read_capped(fh, options.max_bytes, name)
        mtime = float(st.st_mtime)
    with PDFIUM_LOCK:  # held while the caller uses the document (see PDFIUM_LOCK)
        opened = open_pdf(data, name, options, mtime)
        try:
            yield opened
        finally:
            opened.close()


def address_metadata(
    pdf: OpenPDF,
    address: PageAddress,
    options: ImageLoadOptions,
    *,
    figure: FigureInfo | None = None,
) -> dict[str, Any]:
    """The metadata of a page or figure, the same whether it is rendered or only listed.

    Keys: ``source`` (the address), ``sha256`` (:func:`page_digest`), ``kind`` (``"page"``
    or ``"figure"``), ``document`` (the PDF as written), ``document_sha256``, ``page``,
    ``page_count``, ``page_width`` / ``page_height`` (points, as displayed), ``rotation``,
    ``width`` / ``height`` (pixels: of the page rendered at ``dpi``, or of the figure's own
    image), ``format`` (``"PNG"``, what a reader hands over), ``dpi`` (pages), ``figure``
    and ``bbox`` (figures: see :class:`FigureInfo`), and ``mtime`` for files.

    Args:
        pdf: The open PDF.
        address: The page or figure.
        options: The caps and ``pdf_dpi``.
        figure: The figure's :class:`FigureInfo` when the caller listed it already.

    Raises:
        ImageLoadError: ``not_found`` (no such page or figure), ``corrupt``.
    """
    info = pdf.page_info(address.page)
    meta: dict[str, Any] = {
        "source": page_address(address.document, address.page, address.figure),
        "sha256": page_digest(pdf.sha256, address.page, address.figure),
        "kind": "page" if address.figure is None else "figure",
        "document": address.document,
        "document_sha256": pdf.sha256,
        "page": address.page,
        "page_count": pdf.page_count,
        "page_width": round(info.width, 2),
        "page_height": round(info.height, 2),
        "rotation": info.rotation,
        "format": "PNG",
    }
    if address.figure is None:
        scale = render_scale(info, options)
        meta["width"], meta["height"] = _pixels(info, scale)
        meta["dpi"] = round(scale * POINTS_PER_INCH, 2)
    else:
        if figure is None:
            figures = pdf.figures(address.page)
            if not 1 <= address.figure <= len(figures):
                raise ImageLoadError(
                    meta["source"],
                    f"no figure {address.figure}: the page has {len(figures)} image(s)",
                    "not_found",
                )
            figure = figures[address.figure - 1]
        meta["figure"] = address.figure
        meta["bbox"] = [round(v, 2) for v in figure.bbox]
        meta["width"], meta["height"] = figure.pixel_width, figure.pixel_height
    if pdf.mtime is not None:
        meta["mtime"] = pdf.mtime
    return meta


def absolute_document(document: str) -> str:
    """A page address's document as records keep it: a plain path made absolute (as
    :func:`~langchain_image_embeddings.images.read_image_source` does for image files), a
    ``file://`` URI as it is."""
    if document[:7].lower() == "file://" or "://" in document:
        return document
    return os.path.abspath(document)


def load_address(
    address: PageAddress,
    options: ImageLoadOptions,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """The RGB image an address names: the page rendered, or the figure extracted.

    Raises:
        ImageLoadError: With the address as its source (see :func:`open_pdf`).
    """
    with open_pdf_file(address.document, options) as pdf:
        if address.figure is None:
            return pdf.render(address.page, options, draft_size)
        return pdf.extract(address.page, address.figure, options)


def load_address_hashed(
    address: PageAddress,
    options: ImageLoadOptions,
    draft_size: tuple[int, int] | None = None,
) -> tuple[Image.Image, str]:
    """:func:`load_address` and the page's content hash (:func:`page_digest`) from the same
    read of the file: what the embeddings check a page against when they must embed the
    bytes that were described (a file rewritten since gives another hash).

    Raises:
        ImageLoadError: With the address as its source (see :func:`open_pdf`).
    """
    with open_pdf_file(address.document, options) as pdf:
        digest = page_digest(pdf.sha256, address.page, address.figure)
        if address.figure is None:
            return pdf.render(address.page, options, draft_size), digest
        return pdf.extract(address.page, address.figure, options), digest


def read_address(address: PageAddress, options: ImageLoadOptions) -> tuple[bytes, dict[str, Any]]:
    """A page rendered (at ``pdf_dpi``) or a figure extracted, as PNG bytes, with
    :func:`address_metadata` (``bytes`` is the PNG's size; ``sha256`` the page's content
    hash, not the PNG's).

    Raises:
        ImageLoadError: With the address as its source (see :func:`open_pdf`).
    """
    address = address._replace(document=absolute_document(address.document))
    with open_pdf_file(address.document, options) as pdf:
        meta = address_metadata(pdf, address, options)
        if address.figure is None:
            image = pdf.render(address.page, options)
        else:
            image = pdf.extract(address.page, address.figure, options)
    out = io.BytesIO()
    # compress_level 1: the bytes are handed over (a thumbnail, a message), not archived.
    image.save(out, format="PNG", compress_level=1)
    data = out.getvalue()
    meta["width"], meta["height"] = image.size
    meta["bytes"] = len(data)
    return data, meta
