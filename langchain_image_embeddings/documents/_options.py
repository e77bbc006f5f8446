"""What a PDF becomes: :class:`PDFOptions` (pages, figures, their minimum size, the text
kept, the time cap)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_PDF_OPTIONS", "PDFOptions"]


@dataclass(frozen=True)
class PDFOptions:
    """What :class:`~langchain_image_embeddings.documents.PDFImageLoader` makes of a PDF.

    The render resolution (``pdf_dpi``) and the page-count cap (``max_pdf_pages``) are
    :class:`~langchain_image_embeddings.images.ImageLoadOptions` fields: every reader of a
    page address needs them, not only the loader.

    Attributes:
        pages: One document per page (``kind="page"``).
        figures: One document per embedded image at least ``min_figure_side`` points on
            both sides on the page and ``min_figure_pixels`` pixels on both sides of its own
            (``kind="figure"``): logos, bullets and rules are left out.
        min_figure_side: Smallest side, in PDF points (1/72 inch) on the page, of a figure
            kept (default 72: one inch).
        min_figure_pixels: Smallest side, in the image's own pixels, of a figure kept.
        max_text_chars: The page's text layer is kept in ``metadata["text"]`` up to this
            many characters (cut at a word boundary, ``text_truncated`` then true); ``0``
            keeps none. 2,000 characters is about a third of a dense page: enough for a
            caption, a title and hybrid (BM25) search, small enough that records stay
            light (each record's metadata lives in memory and in every search result).
        max_seconds: Time cap for listing one PDF's pages, figures and text; a slower file
            fails whole with code ``timeout`` (rendering happens later, per page).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.documents import PDFImageLoader, PDFOptions

            loader = PDFImageLoader("reports", pdf_options=PDFOptions(figures=False))
    """

    pages: bool = True
    figures: bool = True
    min_figure_side: float = 72.0
    min_figure_pixels: int = 32
    max_text_chars: int = 2_000
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not (self.pages or self.figures):
            raise ValueError("PDFOptions: pages and figures cannot both be off")
        if not (isinstance(self.max_text_chars, int) and self.max_text_chars >= 0):
            raise ValueError("PDFOptions.max_text_chars must be an int >= 0")
        if not (isinstance(self.min_figure_pixels, int) and self.min_figure_pixels >= 1):
            raise ValueError("PDFOptions.min_figure_pixels must be an int >= 1")
        for name in ("min_figure_side", "max_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"PDFOptions.{name} must be a positive number, not {value!r}")


DEFAULT_PDF_OPTIONS = PDFOptions()
