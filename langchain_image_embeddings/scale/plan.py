"""The shard plan: a source of images cut into numbered, deterministic shards.

A source is a folder (every image file under it, sorted as
:class:`~langchain_image_embeddings.document_loaders.ImageDirectoryLoader` walks it), a list
of paths/URIs (kept in the given order), or a Parquet/CSV table with a column of URIs. With
``pdf`` (a :class:`~langchain_image_embeddings.documents.PDFOptions` or ``True``), every
local ``.pdf`` file of a folder or list becomes its page (and, if the options say so,
figure) addresses, ``/abs/file.pdf#page=N``, listed as
:func:`~langchain_image_embeddings.documents.pdf_documents` lists them: the same sources
and content ids as ``ImageDirectoryLoader(pdf=...)`` and ``sync_directory``. A PDF that
cannot be listed (encrypted, damaged, too many pages ...) stays one input, the file
itself, which the embedding run reports as a failure with the PDF's own code. The
plan cuts the inputs, in order, into shards of ``shard_size``; shard ``i`` is written to
``shard-<i>.parquet``. The same source gives the same shards, so a rerun maps every input to
the same shard file and can skip the shards already written.

Each shard carries a digest of its inputs (the URIs and, for local files, their size and
modification time): a shard file written for other inputs, or for files changed since, no
longer matches its shard and is embedded again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_image_embeddings.documents import DEFAULT_PDF_OPTIONS, PDFOptions, pdf_documents
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import (
    PYARROW_SCHEMES,
    ImageLoadOptions,
    is_pdf_path,
    open_object_storage,
    parse_address,
    uri_scheme,
)
from langchain_image_embeddings.scale._deps import require_pyarrow

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "SHARD_PREFIX",
    "SHARD_SUFFIX",
    "Shard",
    "ShardPlan",
    "Source",
    "expand_pdfs",
    "list_source",
    "pdf_options_of",
    "plan_shards",
    "shard_digest",
    "shard_file_name",
]


#: Default number of images per shard (a few minutes of work on one CPU model).
DEFAULT_SHARD_SIZE = 1000

#: Shard files are ``<SHARD_PREFIX><index, 6 digits><SHARD_SUFFIX>``.
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".parquet"

Source = str | os.PathLike[str] | Sequence[str]


def shard_file_name(index: int) -> str:
    """The file name of shard ``index``: ``shard-000042.parquet``."""
    return f"{SHARD_PREFIX}{index:06d}{SHARD_SUFFIX}"


@dataclass(frozen=True)
class Shard:
    """One shard of a plan: its number, inputs and their digest.

    Attributes:
        index: Position of the shard in the plan (0-based).
        inputs: Paths/URIs, in plan order.
        digest: SHA-256 of the inputs (and, for local files, their size and mtime).

    Example:
        >>> shard = Shard(0, ("a.jpg", "b.jpg"), "0" * 64)
        >>> shard.file_name, len(shard)
        ('shard-000000.parquet', 2)
    """

    index: int
    inputs: tuple[str, ...]
    digest: str

    @property
    def file_name(self) -> str:
        """``shard-<index>.parquet``."""
        return shard_file_name(self.index)

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class ShardPlan:
    """A source cut into shards (see :func:`plan_shards`).

    Attributes:
        shards: The shards, by index.
        source: What the plan was made from, for messages.
        shard_size: Inputs per shard (the last one may hold fewer).

    Example:
        >>> plan = plan_shards(["a.jpg", "b.jpg", "c.jpg"], shard_size=2)
        >>> [s.inputs for s in plan.shards]
        [('a.jpg', 'b.jpg'), ('c.jpg',)]
    """

    shards: tuple[Shard, ...]
    source: str
    shard_size: int

    @property
    def total(self) -> int:
        """Number of inputs over all shards."""
        return sum(len(s) for s in self.shards)

    def __len__(self) -> int:
        return len(self.shards)


def _stamp(uri: str) -> str:
    """What identifies an input's current content cheaply: its URI, plus size and mtime for
    a local file, or for the PDF a page address names (one ``stat``; a missing file is just
    its URI)."""
    if "://" in uri or uri.startswith("data:"):
        return uri
    address = parse_address(uri)
    try:
        st = os.stat(uri if address is None else address.document)
    except (OSError, ValueError):
        return uri
    return f"{uri}\0{st.st_size}\0{st.st_mtime_ns}"


def shard_digest(inputs: Iterable[str]) -> str:
    """SHA-256 over the stamps of ``inputs`` (see :class:`Shard`)."""
    digest = hashlib.sha256()
    for uri in inputs:
        digest.update(_stamp(uri).encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
    return digest.hexdigest()


def pdf_options_of(pdf: bool | PDFOptions | None) -> PDFOptions | None:
    """``pdf`` as options: ``True`` the defaults (pages and figures), false ``None``.

    Example:
        >>> pdf_options_of(True).figures, pdf_options_of(False)
        (True, None)
    """
    if isinstance(pdf, PDFOptions):
        return pdf
    return DEFAULT_PDF_OPTIONS if pdf else None


def expand_pdfs(
    inputs: Iterable[str], options: PDFOptions, load_options: ImageLoadOptions | None = None
) -> list[str]:
    """Each local ``.pdf`` path among ``inputs`` replaced by its page and figure addresses,
    in place and in page order; other inputs (and page addresses) as they are.

    A PDF that cannot be listed stays as the file itself: the embedding run reports it
    with the PDF's error code (:func:`~langchain_image_embeddings.scale.embed.read_input`),
    and the other inputs are planned as usual.

    Example:
        .. code-block:: python

            expand_pdfs(["cat.jpg", "report.pdf"], PDFOptions(figures=False))
            # ['cat.jpg', '/abs/report.pdf#page=1', '/abs/report.pdf#page=2']
    """
    policy = load_options or ImageLoadOptions()
    out: list[str] = []
    for uri in inputs:
        if not is_pdf_path(uri) or "://" in uri or uri.startswith("data:"):
            out.append(uri)
            continue
        try:
            docs = pdf_documents(uri, policy, options)
        except ImageLoadError:
            out.append(uri)  # reported per file when the shard is embedded
            continue
        out.extend(doc.page_content for doc in docs)
    return out


def list_source(
    source: Source,
    *,
    column: str | None = None,
    load_options: ImageLoadOptions | None = None,
    pdf: bool | PDFOptions = False,
) -> tuple[list[str], str]:
    """The inputs of a source, in plan order, and a description of it.

    Args:
        source: A folder, a ``.parquet`` / ``.csv`` file (with ``column``), or a sequence of
            paths/URIs.
        column: The column of URIs of a table source (default: ``"uri"``, else ``"path"``,
            else ``"source"``).
        load_options: The policy a table in object storage is read under (it needs
            ``allow_object_storage``; see
            :func:`~langchain_image_embeddings.images.open_object_storage`), and the caps
            PDFs are listed under.
        pdf: Expand the local PDFs of a folder or list into page (and figure) addresses
            (see :func:`expand_pdfs`); ``True`` for the default
            :class:`~langchain_image_embeddings.documents.PDFOptions`.

    Raises:
        ValueError: The source is missing, empty of images, or the column is absent.
        ImageLoadError: A table in object storage that the options refuse.
    """
    options = pdf_options_of(pdf)
    inputs, described = _list_source(source, column, load_options, options)
    if options is not None:
        inputs = expand_pdfs(inputs, options, load_options)
    return inputs, described


def _list_source(
    source: Source,
    column: str | None,
    load_options: ImageLoadOptions | None,
    pdf: PDFOptions | None,
) -> tuple[list[str], str]:
    if not isinstance(source, (str, os.PathLike)):
        inputs: list[str] = []
        for n, item in enumerate(source):
            value = os.fspath(item) if isinstance(item, (str, os.PathLike)) else item
            if not isinstance(value, str):
                raise ValueError(
                    f"input #{n} {item!r:.80} ({type(item).__name__}): a source lists paths "
                    "or URIs as str (embed bytes with ImageEmbeddings.embed_images)"
                )
            inputs.append(value)
        return inputs, f"{len(inputs)} URIs"
    text = os.fspath(source)
    if uri_scheme(text) in PYARROW_SCHEMES:  # a table of URIs in object storage
        filesystem, where = open_object_storage(text, load_options)  # the policy first
        if not where.lower().endswith((".parquet", ".csv")):
            raise ValueError(f"source {text}: only a .parquet/.csv table of URIs can be remote")
        described = f"{text} (column {column or 'uri'})"
        return _table_column(text, column, (filesystem, where)), described
    path = Path(source)
    if path.is_dir():
        from langchain_image_embeddings.document_loaders import ImageDirectoryLoader

        loader = ImageDirectoryLoader(path, pdf=pdf or False)
        # Same walk, same absolute sources as sync_directory / add_documents(loader.load()).
        return [str(p) for p in loader.iter_paths()], str(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv") and path.is_file():
        return _table_column(path, column), f"{path} (column {column or 'uri'})"
    if not path.exists():
        raise ValueError(f"source {path} does not exist")
    raise ValueError(
        f"source {path} is neither a folder nor a .parquet/.csv table of URIs "
        "(pass a list of paths for single files)"
    )


def _table_column(
    path: Path | str, column: str | None, remote: tuple[Any, str] | None = None
) -> list[str]:
    """The URI column of a local table, or of one in object storage (``remote``: the
    filesystem and path :func:`~langchain_image_embeddings.images.open_object_storage` gave)."""
    require_pyarrow()
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    filesystem, where = remote if remote is not None else (None, str(path))
    if where.lower().endswith(".csv"):
        if filesystem is None:
            table = pacsv.read_csv(where)
        else:
            with filesystem.open_input_stream(where) as stream:
                table = pacsv.read_csv(stream)
    else:
        table = pq.read_table(where, filesystem=filesystem)
    names = table.column_names
    wanted = [column] if column else [c for c in ("uri", "path", "source") if c in names][:1]
    if not wanted or wanted[0] not in names:
        raise ValueError(
            f"{path} has no column {column or 'uri/path/source'!r} of URIs; its columns: "
            f"{', '.join(names)} (choose one with column=... / --column)"
        )
    values = table.column(wanted[0]).to_pylist()
    return [str(v) for v in values if v is not None and str(v) != ""]


def plan_shards(
    source: Source,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    column: str | None = None,
    load_options: ImageLoadOptions | None = None,
    pdf: bool | PDFOptions = False,
) -> ShardPlan:
    """Cut a source into shards of ``shard_size`` inputs, deterministically.

    Args:
        source: A folder, a ``.parquet``/``.csv`` table of URIs, or a list of paths/URIs.
        shard_size: Inputs per shard.
        column: The URI column of a table source.
        load_options: The policy a table in object storage is read under (its rows are read
            later under the embeddings' own ``load_options``), and the caps PDFs are
            listed under.
        pdf: Embed the pages (and figures) of the local PDFs of a folder or list: ``True``
            or a :class:`~langchain_image_embeddings.documents.PDFOptions` (see
            :func:`expand_pdfs`).

    Returns:
        The plan; the same source (unchanged files) always gives the same shards.

    Raises:
        ValueError: A bad ``shard_size``, a missing source or column.
        ImageLoadError: A table in object storage that ``load_options`` refuses.

    Example:
        >>> plan = plan_shards(["a.jpg", "b.jpg", "c.jpg"], shard_size=2)
        >>> [s.file_name for s in plan.shards]
        ['shard-000000.parquet', 'shard-000001.parquet']
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, not {shard_size}")
    inputs, described = list_source(source, column=column, load_options=load_options, pdf=pdf)
    shards = tuple(
        Shard(n, tuple(chunk), shard_digest(chunk))
        for n, chunk in enumerate(
            inputs[i : i + shard_size] for i in range(0, len(inputs), shard_size)
        )
    )
    return ShardPlan(shards, described, shard_size)
