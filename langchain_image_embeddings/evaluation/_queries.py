"""The corpus (a folder of images) and the queries evaluated against it.

Three ways to get queries:

* :func:`load_queries`: a labelled query file, JSON Lines or CSV (see docs/evaluation.md).
* :func:`class_queries`: a class folder (``root/<class>/<image>``): every image queries the
  other images of its class.
* :func:`label_free_queries` (in ``_augment``): augmented copies of a sample of the images,
  each answered by its original.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_image_embeddings.errors import ImageEmbeddingsError
from langchain_image_embeddings.images import IMAGE_SUFFIXES

__all__ = [
    "Corpus",
    "CorpusItem",
    "Query",
    "QueryFileError",
    "class_queries",
    "list_corpus",
    "load_queries",
    "normal_key",
]


class QueryFileError(ImageEmbeddingsError, ValueError):
    """A query file that cannot be used; the message names the file, the line and why.

    Attributes:
        path: The query file.
        line: The 1-based line of the offending query (``None``: the whole file).
        reason: What is wrong with it.
    """

    def __init__(self, path: str | os.PathLike[str], line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {reason}")


def normal_key(value: str, root: Path | None = None) -> str:
    """The form a corpus reference is compared in: an absolute, resolved path for a local
    path (relative ones against ``root``), the string itself for a URI or an id."""
    if "://" in value or value.startswith("data:"):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    return str(path.resolve())


@dataclass(frozen=True)
class CorpusItem:
    """One image of the corpus.

    Attributes:
        key: Its absolute path (the id it gets in an evaluation store).
        label: Its class: the first folder under the corpus root (``None`` at the root).
    """

    key: str
    label: str | None = None


@dataclass
class Corpus:
    """The images queries are answered from, in a stable (sorted) order."""

    root: Path | None
    items: list[CorpusItem]

    @property
    def keys(self) -> list[str]:
        """Every item's key, in order."""
        return [item.key for item in self.items]

    def by_label(self) -> dict[str, list[str]]:
        """The keys of each class."""
        classes: dict[str, list[str]] = {}
        for item in self.items:
            if item.label is not None:
                classes.setdefault(item.label, []).append(item.key)
        return classes


def list_corpus(source: str | os.PathLike[str] | Sequence[str]) -> Corpus:
    """A folder's image files (recursively, sorted, hidden entries skipped) or a list of paths.

    Raises:
        FileNotFoundError: The folder does not exist.
        ValueError: It holds no image file.
    """
    if isinstance(source, (str, os.PathLike)):
        root = Path(source).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"no folder at {source}")
        items = []
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                label = relative.parts[0] if len(relative.parts) > 1 else None
                items.append(CorpusItem(str(path), label))
        if not items:
            raise ValueError(f"{source} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
        return Corpus(root, items)
    return Corpus(None, [CorpusItem(normal_key(str(p))) for p in source])


@dataclass(frozen=True)
class Query:
    """One query and the corpus items that answer it.

    Attributes:
        relevant: One entry per relevant item: its key (absolute path) for a corpus file,
            else a store id or a source as the query file wrote it.
        text: The query text (CLIP-type models), or ``None``.
        image: The query image (a path, bytes, a PIL image ...), or ``None``.
        exclude: Keys never counted as results (the query image itself, in a class folder).
        origin: Where it comes from: ``file.jsonl:3``, the class, or the augmentation recipe.
    """

    relevant: frozenset[str]
    text: str | None = None
    image: Any = None
    exclude: frozenset[str] = field(default_factory=frozenset)
    origin: str = ""

    @property
    def kind(self) -> str:
        """``"text"`` or ``"image"``."""
        return "text" if self.text is not None else "image"


def class_queries(corpus: Corpus) -> list[Query]:
    """Every image of a class folder queries the other images of its class.

    Images directly under the root (no class) and classes of one image stay in the corpus
    as distractors but ask nothing.

    Raises:
        ValueError: No class has two images.
    """
    queries = []
    for label, keys in sorted(corpus.by_label().items()):
        if len(keys) < 2:
            continue
        for key in keys:
            others = frozenset(k for k in keys if k != key)
            queries.append(Query(others, image=key, exclude=frozenset({key}), origin=label))
    if not queries:
        raise ValueError(
            "no class folder with two images: a class folder is ROOT/<class>/<image> "
            "(every image queries the others of its class)"
        )
    return queries


# -- query files -------------------------------------------------------------------------


def load_queries(
    path: str | os.PathLike[str], corpus: Corpus | None = None, *, check_files: bool = True
) -> list[Query]:
    """Read a labelled query file: JSON Lines (``.jsonl``) or CSV (``.csv``).

    Each query has exactly one of ``image`` (a path, relative to the query file's folder)
    or ``text``, and ``relevant`` (paths relative to the corpus root, or without a corpus
    to the query file's folder; or store ids / sources), ``label`` (a class folder of the
    corpus), or both::

        {"image": "queries/cat.jpg", "relevant": ["cats/01.jpg", "cats/02.jpg"]}
        {"text": "a red car", "label": "cars"}

    In CSV the columns are ``image``, ``text``, ``relevant`` (several joined by ``|``) and
    ``label``; an empty cell is a missing value. Blank lines (and JSONL lines starting
    with ``#``) are skipped.

    Raises:
        QueryFileError: Naming the line and the reason: not JSON, no or two query fields,
            no relevant item, a label no corpus image has, a query image that is missing.
    """
    file = Path(path)
    if not file.is_file():
        raise QueryFileError(file, None, "no such file")
    suffix = file.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise QueryFileError(file, None, f"unknown format {suffix or '(none)'}: use .jsonl or .csv")
    rows = _jsonl_rows(file) if suffix == ".jsonl" else _csv_rows(file)
    queries = [_query(file, line, row, corpus, check_files) for line, row in rows]
    if not queries:
        raise QueryFileError(file, None, "no query in the file")
    return queries


def _jsonl_rows(file: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    with file.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise QueryFileError(
                    file, line, f"not JSON: {exc.msg} at column {exc.colno}"
                ) from exc
            if not isinstance(row, dict):
                raise QueryFileError(
                    file, line, f"expected a JSON object, got {type(row).__name__}"
                )
            yield line, row


def _csv_rows(file: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    with file.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if not columns & {"image", "text"} or not columns & {"relevant", "label"}:
            raise QueryFileError(
                file,
                1,
                f"CSV header {sorted(columns)} needs a column image or text, and relevant or label",
            )
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            values: dict[str, Any] = {k: v for k, v in row.items() if k and (v or "").strip()}
            if "relevant" in values:
                values["relevant"] = [p.strip() for p in values["relevant"].split("|") if p.strip()]
            yield reader.line_num, values


def _query(
    file: Path, line: int, row: Mapping[str, Any], corpus: Corpus | None, check_files: bool
) -> Query:
    unknown = sorted(set(row) - {"image", "text", "relevant", "label", "id"})
    if unknown:
        raise QueryFileError(
            file, line, f"unknown field(s) {unknown}: expected image or text, relevant, label"
        )
    given = [name for name in ("image", "text") if row.get(name) not in (None, "")]
    if len(given) != 1:
        raise QueryFileError(
            file,
            line,
            "a query needs exactly one of 'image' or 'text'" + (" (got both)" if given else ""),
        )
    value = row[given[0]]
    if not isinstance(value, str):
        raise QueryFileError(
            file, line, f"'{given[0]}' must be a string, got {type(value).__name__}"
        )
    root = None if corpus is None else corpus.root
    relevant: set[str] = set()
    listed = row.get("relevant")
    if listed is not None:
        if isinstance(listed, str):
            listed = [listed]
        if not isinstance(listed, list) or not all(isinstance(v, str) and v for v in listed):
            raise QueryFileError(file, line, "'relevant' must be a string or a list of strings")
        # A file (under the corpus folder, else beside the query file) is named by its
        # absolute path; anything else (a store id, a recorded source) is kept as written.
        for ref in listed:
            path = normal_key(ref, file.parent if root is None else root)
            relevant.add(path if Path(path).is_file() else ref)
    label = row.get("label")
    if label is not None:
        if not isinstance(label, str) or not label:
            raise QueryFileError(file, line, "'label' must be a non-empty string")
        classes = {} if corpus is None else corpus.by_label()
        if label not in classes:
            known = ", ".join(sorted(classes)[:10]) or "none: the corpus has no class folders"
            raise QueryFileError(
                file, line, f"no corpus image has label {label!r} (labels: {known})"
            )
        relevant.update(classes[label])
    if not relevant:
        raise QueryFileError(file, line, "no relevant item: give 'relevant' or 'label'")
    if given[0] == "text":
        return Query(frozenset(relevant), text=value, origin=f"{file.name}:{line}")
    image = value
    if "://" not in image and not image.startswith("data:"):
        image_path = Path(image).expanduser()
        image_path = image_path if image_path.is_absolute() else file.parent / image_path
        if check_files and not image_path.is_file():
            raise QueryFileError(
                file, line, f"query image {value!r} not found (looked at {image_path})"
            )
        image = str(image_path)
        # A query image that is also in the corpus would find itself: it is not a result.
        itself = normal_key(image)
        relevant.discard(itself)
        if not relevant:
            raise QueryFileError(file, line, "the only relevant item is the query image itself")
        return Query(
            frozenset(relevant),
            image=image,
            exclude=frozenset({itself}),
            origin=f"{file.name}:{line}",
        )
    return Query(frozenset(relevant), image=image, origin=f"{file.name}:{line}")
