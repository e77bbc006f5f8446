"""One PDF to image documents: a document per page and per figure, text layer included.

Nothing is rendered here: a page document's ``page_content`` is the page's address
(``/abs/report.pdf#page=3``) and every reader of the package renders it when it needs the
pixels. Listing costs one read and hash of the file, and PDFium's parse of each page for
its size, text and image objects.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from langchain_core.documents import Document

from langchain_image_embeddings.documents._options import DEFAULT_PDF_OPTIONS, PDFOptions
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._options import ImageLoadOptions
from langchain_image_embeddings.images._pdf import (
    FigureInfo,
    OpenPDF,
    PageAddress,
    absolute_document,
    address_metadata,
    open_pdf_file,
)

__all__ = ["keep_figure", "pdf_documents", "truncate_text"]

_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def truncate_text(text: str, limit: int) -> tuple[str, bool]:
    """A page's text layer, tidied (``\\r\\n`` and runs of blanks folded) and cut to at
    most ``limit`` characters at a word boundary; the flag says whether it was cut.

    Example:
        >>> truncate_text("Revenue  grew\\r\\nin 2024", 12)
        ('Revenue grew', True)
    """
    tidy = _BLANK_LINES.sub(
        "\n\n", _SPACES.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    )
    tidy = tidy.replace("\x00", "").strip()
    if len(tidy) <= limit:
        return tidy, False
    cut = tidy[: limit + 1]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    # a boundary in the second half keeps the cut on a word; a long token is cut as it is
    head = cut[:space] if space > limit // 2 else cut[:limit]
    return head.rstrip(), True


def keep_figure(figure: FigureInfo, options: PDFOptions) -> bool:
    """Whether a figure is large enough to be its own document (not a logo, bullet or rule)."""
    x0, y0, x1, y1 = figure.bbox
    on_page = min(x1 - x0, y1 - y0) >= options.min_figure_side
    own = min(figure.pixel_width, figure.pixel_height) >= options.min_figure_pixels
    return on_page and own


def pdf_documents(
    path: str | os.PathLike[str],
    load_options: ImageLoadOptions,
    options: PDFOptions = DEFAULT_PDF_OPTIONS,
) -> list[Document]:
    """The page and figure documents of one local PDF, in page order (each page, then its
    figures in drawing order).

    Args:
        path: The PDF (a path, made absolute, or a ``file://`` URI).
        load_options: The caps (``max_bytes``, ``max_pdf_pages``, ``max_pixels``, ``root``)
            and the render resolution ``pdf_dpi``.
        options: Pages, figures, the text kept and the time cap.

    Returns:
        Image documents: ``page_content`` is the address, ``metadata`` is
        :func:`~langchain_image_embeddings.images.address_metadata` plus, for pages,
        ``text`` (and ``text_truncated``).

    Raises:
        ImageLoadError: The whole file, with its code (``encrypted``, ``truncated``,
            ``corrupt``, ``too_many_pages``, ``timeout``, ...): no document of a file that
            failed is returned, so a store never holds half of a broken file.
    """
    document = absolute_document(os.fspath(path))
    started = time.monotonic()
    with open_pdf_file(document, load_options) as pdf:
        docs: list[Document] = []
        for page in range(1, pdf.page_count + 1):
            if time.monotonic() - started > options.max_seconds:
                raise ImageLoadError(
                    document,
                    f"listing its pages took more than {options.max_seconds:g} s (stopped at "
                    f"page {page} of {pdf.page_count}; raise PDFOptions.max_seconds)",
                    "timeout",
                )
            docs.extend(_page_documents(pdf, document, page, load_options, options))
    return docs


def _page_documents(
    pdf: OpenPDF, document: str, page: int, load_options: ImageLoadOptions, options: PDFOptions
) -> list[Document]:
    docs: list[Document] = []
    if options.pages:
        meta = address_metadata(pdf, PageAddress(document, page), load_options)
        if options.max_text_chars:
            text, cut = truncate_text(pdf.text(page), options.max_text_chars)
            meta["text"] = text
            if cut:
                meta["text_truncated"] = True
        docs.append(_document(meta))
    if options.figures:
        for figure in pdf.figures(page):
            if keep_figure(figure, options):
                address = PageAddress(document, page, figure.figure)
                docs.append(_document(address_metadata(pdf, address, load_options, figure=figure)))
    return docs


def _document(metadata: dict[str, Any]) -> Document:
    return Document(page_content=str(metadata["source"]), metadata=metadata)
