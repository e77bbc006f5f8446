"""``PDFImageLoader``: the pages and figures of PDFs as LangChain image documents."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from langchain_image_embeddings.documents._options import DEFAULT_PDF_OPTIONS, PDFOptions
from langchain_image_embeddings.documents._pages import pdf_documents
from langchain_image_embeddings.errors import ImageLoadError, OnError
from langchain_image_embeddings.images._options import ImageLoadOptions
from langchain_image_embeddings.images._pdf import is_pdf_path

__all__ = ["PDFImageLoader"]


class PDFImageLoader(BaseLoader):
    """Load PDFs as image documents: one per page and one per embedded figure.

    A page document's ``page_content`` is the page's address, ``/abs/report.pdf#page=3``,
    which every reader of the package renders (stores, ``load_image``, thumbnails,
    ``image_rag_message``); a figure's is ``/abs/report.pdf#page=3&figure=2``. Nothing is
    rendered while loading. Metadata (see
    :func:`~langchain_image_embeddings.images.address_metadata`): ``source``, ``kind``
    (``"page"`` / ``"figure"``), ``document``, ``page`` (1-based), ``page_count``,
    ``page_width`` / ``page_height`` (points), ``rotation``, ``width`` / ``height``
    (pixels), ``dpi`` (pages), ``bbox`` (figures: points, origin top-left of the page as
    displayed), ``text`` (pages: the text layer, at most ``max_text_chars``),
    ``document_sha256`` and ``sha256``, the content hash of the file's bytes and the page
    (and figure) number, from which a store makes the content id.

    A PDF that cannot be read (encrypted, truncated, damaged, too many pages, too slow)
    fails whole and is reported in :attr:`failures` with its code; the other files load.

    Setup:
        .. code-block:: bash

            pip install "langchain-image-embeddings[pdf]"

    Key init args:
        path: str | Path | Iterable[str | Path]
            A PDF, a folder (its ``*.pdf`` files, recursively, hidden ones skipped) or a
            list of PDFs.
        pdf_options: PDFOptions
            Pages, figures and their minimum size, the text kept, the time cap.
        load_options: ImageLoadOptions
            ``pdf_dpi``, ``max_pdf_pages``, ``max_bytes``, ``max_pixels``, ``root``.
        on_error: "skip" | "raise"
            Collect unreadable PDFs in :attr:`failures` (default) or raise the first.

    Instantiate and load:
        .. code-block:: python

            from langchain_image_embeddings.documents import PDFImageLoader

            loader = PDFImageLoader("reports")
            docs = loader.load()
            docs[0].page_content        # '/abs/reports/q3.pdf#page=1'
            docs[0].metadata["page"]    # 1
            loader.failures             # [ImageLoadError(... [encrypted]), ...]
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        pdf_options: PDFOptions | None = None,
        load_options: ImageLoadOptions | None = None,
        on_error: OnError = "skip",
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
        self.paths: list[str | os.PathLike[str]] = (
            [path] if isinstance(path, (str, os.PathLike)) else list(path)
        )
        self.pdf_options = pdf_options or DEFAULT_PDF_OPTIONS
        self.load_options = load_options or ImageLoadOptions()
        self.on_error: OnError = on_error
        #: One :class:`ImageLoadError` per PDF that could not be read (last run).
        self.failures: list[ImageLoadError] = []

    def iter_files(self) -> Iterator[Path]:
        """The PDFs the loader reads, folders expanded in sorted order."""
        for given in self.paths:
            path = Path(given)
            if not path.is_dir():
                yield path
                continue
            for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith(".") and is_pdf_path(name):
                        yield Path(dirpath) / name

    def lazy_load(self) -> Iterator[Document]:
        """Yield the page and figure documents of each readable PDF, file by file."""
        self.failures = []
        for file in self.iter_files():
            try:
                docs = pdf_documents(file, self.load_options, self.pdf_options)
            except ImageLoadError as err:
                if self.on_error == "raise":
                    raise
                self.failures.append(err)
                continue
            yield from docs
