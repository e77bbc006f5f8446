"""Image documents: LangChain loaders for folders and lists of image URIs.

An *image document* is a :class:`~langchain_core.documents.Document` whose ``page_content``
is the image's URI (a path, an ``http(s)`` URL or a ``data:`` URI) and whose metadata
describes it: ``source``, ``sha256`` (of the file bytes), ``width``, ``height``, ``format``
and ``bytes``. Only the image header is parsed (Pillow opens lazily),
so loading a folder is fast; pixels are decoded later, by the embeddings. The metadata
comes from :func:`~langchain_image_embeddings.images.read_image_source`, the package's one
reader of image bytes.

Unreadable inputs are never dropped silently: with ``on_error="skip"`` (the default) they
are collected in the loader's :attr:`~ImageDirectoryLoader.failures` list as
:class:`~langchain_image_embeddings.errors.ImageLoadError`; with ``on_error="raise"`` the
first one is raised.

Content-keyed by default, for LangChain's :func:`~langchain_core.indexing.index`: it hashes
each document's ``page_content`` and metadata to decide what to re-embed, so
:class:`ImageDirectoryLoader` leaves out ``mtime`` (``include_mtime=True`` adds it) and, with
``paths="relative"`` (the default), writes each file as the folder path *as given* joined
with the file's path inside it (``photos/cats/tom.jpg`` for ``ImageDirectoryLoader("photos")``).
``touch`` then changes nothing, and moving the project (the folder and the working directory
with it) re-embeds nothing. ``paths="absolute"`` writes resolved absolute paths (what
:func:`~langchain_image_embeddings.sync.sync_directory` and ``imgemb index`` use: a store
served from another directory still finds its files).
"""

from __future__ import annotations

import errno
import fnmatch
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from langchain_image_embeddings.documents._options import DEFAULT_PDF_OPTIONS, PDFOptions
from langchain_image_embeddings.documents._pages import pdf_documents
from langchain_image_embeddings.errors import ImageLoadError, OnError
from langchain_image_embeddings.images._options import IMAGE_SUFFIXES, ImageLoadOptions
from langchain_image_embeddings.images._pdf import absolute_document, is_pdf_path
from langchain_image_embeddings.images._read import describe_image_file, read_image_source
from langchain_image_embeddings.images._source import ImageSource

__all__ = ["ImageDirectoryLoader", "ImageURILoader", "PathStyle"]

#: How :class:`ImageDirectoryLoader` writes each file's ``source`` / ``page_content``.
PathStyle = Literal["relative", "absolute"]


def _symlink_error(link: Path, root: Path) -> ImageLoadError | None:
    """Why the symlink ``link`` found under ``root`` is not indexed (``None``: it is fine)."""
    try:
        target = link.resolve(strict=True)
    except RuntimeError:  # Python 3.11 raises RuntimeError("Symlink loop ...")
        return ImageLoadError(str(link), "symlink loop", "not_found")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ImageLoadError(str(link), "symlink loop", "not_found")
        return ImageLoadError(str(link), "broken symlink (its target is missing)", "not_found")
    if not target.is_relative_to(root):
        return ImageLoadError(str(link), "symlink pointing outside the root", "outside_root")
    return None


class _ReportingLoader(BaseLoader):
    """Shared error policy: collect failures or raise the first one."""

    def __init__(self, on_error: OnError, load_options: ImageLoadOptions | None) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
        self.on_error: OnError = on_error
        self.load_options = load_options or ImageLoadOptions()
        #: One :class:`ImageLoadError` per input that could not be described (last run).
        self.failures: list[ImageLoadError] = []

    def _fail(self, err: ImageLoadError) -> None:
        if self.on_error == "raise":
            raise err
        self.failures.append(err)


class ImageDirectoryLoader(_ReportingLoader):
    """Load the images of a folder as image documents (URI + metadata, pixels not decoded).

    Walks the folder (recursively by default), skipping hidden files and folders, never
    following a symlink to a target outside the root, and keeping files whose relative
    path or name matches ``glob`` and none of ``exclude``.

    Setup:
        .. code-block:: bash

            pip install langchain-image-embeddings

    Key init args:
        path: str | Path
            The folder.
        glob: str | Sequence[str]
            ``fnmatch`` patterns matched against the relative POSIX path and the file name;
            ``**/`` may match no folder (``"**/*.jpg"`` includes the top-level JPEGs).
        exclude: Sequence[str]
            Patterns to leave out, matched the same way.
        suffixes: Sequence[str] | None
            File suffixes to consider, with or without the dot (default: common image
            suffixes; ``None``: any file).
        on_error: "skip" | "raise"
            Collect unreadable files in :attr:`failures` (default) or raise the first.
        pdf: bool | PDFOptions
            Also load the ``.pdf`` files, as one document per page and per figure (see
            :class:`~langchain_image_embeddings.documents.PDFImageLoader`; extra ``[pdf]``).
            Off by default.
        paths: "relative" | "absolute"
            ``source`` and ``page_content`` as the folder path as given joined with the
            file's path inside it (default: stable under ``index()`` when the project
            moves), or resolved absolute paths.
        include_mtime: bool
            Add the file's ``mtime`` to the metadata (default no: ``index()`` would
            re-embed a file that was only touched).

    Instantiate and load:
        .. code-block:: python

            from langchain_image_embeddings.document_loaders import ImageDirectoryLoader

            loader = ImageDirectoryLoader("photos", exclude=["thumbs/*"])
            docs = loader.load()
            docs[0].page_content           # 'photos/chelsea.jpg'
            docs[0].metadata["sha256"]     # content hash of the file
            loader.failures                # [ImageLoadError(...), ...] for unreadable files
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        glob: str | Sequence[str] = "*",
        exclude: Sequence[str] = (),
        recursive: bool = True,
        suffixes: Sequence[str] | None = IMAGE_SUFFIXES,
        on_error: OnError = "skip",
        load_options: ImageLoadOptions | None = None,
        pdf: bool | PDFOptions = False,
        paths: PathStyle = "relative",
        include_mtime: bool = False,
    ) -> None:
        super().__init__(on_error, load_options)
        if paths not in ("relative", "absolute"):
            raise ValueError(f"paths must be 'relative' or 'absolute', not {paths!r}")
        #: How ``.pdf`` files become page and figure documents (``None``: they are skipped).
        self.pdf_options: PDFOptions | None = (
            pdf if isinstance(pdf, PDFOptions) else DEFAULT_PDF_OPTIONS if pdf else None
        )
        self.path = Path(path)
        self.paths: PathStyle = paths
        self.include_mtime = include_mtime
        # A lone string is one pattern / suffix, never its characters: list("thumbs/*")
        # would hold "*" and exclude every file, tuple(".jpg") would keep none.
        self.glob = [glob] if isinstance(glob, str) else list(glob)
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        self.recursive = recursive
        if isinstance(suffixes, str):
            suffixes = [suffixes]
        self.suffixes = (
            None
            if suffixes is None
            else tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes)
        )

    @property
    def root(self) -> Path:
        """The folder as an absolute, resolved path (the prefix of every absolute ``source``)."""
        return self.path.resolve()

    def _matches(self, rel: str, patterns: Iterable[str]) -> bool:
        name = rel.rsplit("/", 1)[-1]
        # "**/" also matches no folder at all, as in pathlib and LangChain's DirectoryLoader
        # (glob="**/*.jpg"): fnmatch alone needs a "/" there and skipped the top-level files.
        candidates = {c for p in patterns for c in (p, p.replace("**/", ""))}
        return any(fnmatch.fnmatch(rel, c) or fnmatch.fnmatch(name, c) for c in candidates)

    def iter_paths(self) -> Iterator[Path]:
        """The files the loader would describe, in a stable (sorted) order."""
        try:
            root = self.root
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
            raise ImageLoadError(str(self.path), f"cannot resolve: {exc}", "not_found") from exc
        if not root.exists():
            raise ImageLoadError(str(self.path), "no such directory", "not_found")
        if not root.is_dir():
            raise ImageLoadError(str(self.path), "not a directory", "not_a_file")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = (
                sorted(d for d in dirnames if not d.startswith(".")) if self.recursive else []
            )
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                file = Path(dirpath) / name
                if (
                    self.suffixes is not None
                    and file.suffix.lower() not in self.suffixes
                    and not (self.pdf_options is not None and is_pdf_path(name))
                ):
                    continue
                rel = file.relative_to(root).as_posix()
                if not self._matches(rel, self.glob) or self._matches(rel, self.exclude):
                    continue
                if file.is_symlink():
                    error = _symlink_error(file, root)
                    if error is not None:
                        self._fail(error)
                        continue
                yield file

    def lazy_load(self) -> Iterator[Document]:
        """Yield one image document per readable image; failures go to :attr:`failures`."""
        self.failures = []
        root = self.root
        for file in self.iter_paths():
            if self.paths == "relative":
                file = Path(os.path.normpath(self.path / file.relative_to(root)))
            if self.pdf_options is not None and is_pdf_path(file):
                try:
                    pages = pdf_documents(file, self.load_options, self.pdf_options)
                except ImageLoadError as err:
                    self._fail(err)
                    continue
                absolute = absolute_document(os.fspath(file))
                for page in pages:
                    if self.paths == "relative":
                        _relative_address(page, absolute, os.fspath(file))
                    if not self.include_mtime:
                        page.metadata.pop("mtime", None)
                    yield page
                continue
            try:
                metadata = describe_image_file(file, self.load_options)
            except ImageLoadError as err:
                self._fail(err)
                continue
            if not self.include_mtime:
                metadata.pop("mtime", None)
            yield Document(page_content=metadata["source"], metadata=metadata)


class ImageURILoader(_ReportingLoader):
    """Image documents from a list of URIs: paths, ``file://``, ``http(s)://`` and ``data:``.

    Each URI is read once by :func:`~langchain_image_embeddings.images.read_image_source`
    (the same :func:`~langchain_image_embeddings.images.resolve_uri` as
    :func:`~langchain_image_embeddings.images.load_image`), so the loader accepts and
    refuses exactly what the embeddings do, and also reads object storage (``s3://``,
    ``gs://`` ... through pyarrow) when ``load_options.allow_object_storage`` is true. Remote
    URLs are fetched only when ``load_options.allow_remote`` is true (to hash them and read
    their size). Refused inputs are reported in :attr:`failures`. To embed without fetching again, embed the
    :class:`~langchain_image_embeddings.images.ImageSource` that :meth:`read` returns.

    Instantiate and load:
        .. code-block:: python

            from langchain_image_embeddings.document_loaders import ImageURILoader
            from langchain_image_embeddings.images import ImageLoadOptions

            loader = ImageURILoader(
                ["cat.jpg", "https://example.com/dog.png"],
                load_options=ImageLoadOptions(allow_remote=True),
            )
            docs = loader.load()
    """

    def __init__(
        self,
        uris: Iterable[str],
        *,
        on_error: OnError = "skip",
        load_options: ImageLoadOptions | None = None,
    ) -> None:
        super().__init__(on_error, load_options)
        self.uris = list(uris)

    def read(self, uri: str) -> ImageSource:
        """Read one URI once: its bytes and their metadata (see
        :func:`~langchain_image_embeddings.images.read_image_source`).

        Raises:
            ImageLoadError: The URI cannot be read or is not an image.
        """
        return read_image_source(uri, self.load_options)

    def describe(self, uri: str) -> dict[str, Any]:
        """Metadata of one URI (see :func:`~langchain_image_embeddings.images.describe_image_file`);
        raises :class:`ImageLoadError`."""
        return self.read(uri).metadata

    def lazy_load(self) -> Iterator[Document]:
        """Yield one image document per readable URI; failures go to :attr:`failures`."""
        self.failures = []
        for index, uri in enumerate(self.uris):
            try:
                metadata = self.describe(uri)
            except ImageLoadError as err:
                self._fail(err.with_index(index))
                continue
            yield Document(page_content=metadata["source"], metadata=metadata)


def _relative_address(page: Document, absolute: str, relative: str) -> None:
    """Write a page's addresses against the folder as given, as the loader does for images.

    ``pdf_documents`` makes the file absolute; under ``paths="relative"`` the page's
    ``source`` (``file.pdf#page=N``) and ``document`` must move with the folder too, or
    ``index()`` would re-embed every page of a project that moved.
    """
    for key in ("source", "document"):
        value = page.metadata.get(key)
        if isinstance(value, str) and value.startswith(absolute):
            page.metadata[key] = relative + value[len(absolute) :]
    page.page_content = str(page.metadata["source"])
