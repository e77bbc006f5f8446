"""Documents with pictures: the pages and figures of PDFs as image documents.

A page or a figure of a PDF has an **address** every reader of the package understands,
the PDF open-parameter fragment (1-based): ``report.pdf#page=3`` is page 3 rendered at
``ImageLoadOptions.pdf_dpi``, ``report.pdf#page=3&figure=2`` the second image drawn on it.
:class:`PDFImageLoader` lists them as LangChain documents (``kind="page"`` /
``kind="figure"``, ``page``, page size, ``bbox``, the text layer, a content hash from the
file's bytes and the page number); stores, thumbnails and ``image_rag_message`` render them
through :func:`~langchain_image_embeddings.images.load_image` with no special case.
Requires the ``[pdf]`` extra (``pypdfium2``).

Example:
    .. code-block:: python

        from langchain_image_embeddings.documents import PDFImageLoader

        docs = PDFImageLoader("reports").load()
        store.add_images(docs)
"""

from __future__ import annotations

from langchain_image_embeddings.documents._loader import PDFImageLoader
from langchain_image_embeddings.documents._options import DEFAULT_PDF_OPTIONS, PDFOptions
from langchain_image_embeddings.documents._pages import keep_figure, pdf_documents, truncate_text

__all__ = [
    "DEFAULT_PDF_OPTIONS",
    "PDFImageLoader",
    "PDFOptions",
    "keep_figure",
    "pdf_documents",
    "truncate_text",
]
