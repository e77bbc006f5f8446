"""Embedding a shard plan in this process (the ``local`` engine) and what every engine shares.

Each shard's inputs are read by :func:`read_input` (that is
:func:`~langchain_image_embeddings.images.read_image_source`: hash + header, the metadata a
store records; a PDF page address is rendered, a PDF the plan could not list reports its
own error) and their bytes stream through the package's
:class:`~langchain_image_embeddings.pipeline.ImagePipeline` (parallel decode, the model in
batches, ``on_error="skip"``): nothing here decodes an image itself. A shard whose file is
already complete is skipped, so a rerun writes nothing new and a killed run resumes at the
first missing shard.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.errors import (
    EncoderError,
    ImageLoadError,
    StoreError,
    StoreLockedError,
)
from langchain_image_embeddings.images import (
    ImageLoadOptions,
    ImageSource,
    is_pdf_path,
    parse_address,
    read_image_source,
)
from langchain_image_embeddings.scale.plan import Shard, ShardPlan
from langchain_image_embeddings.scale.shards import (
    ShardRows,
    is_complete,
    read_shard_info,
    remove_partial_files,
    shard_files,
    write_shard,
)
from langchain_image_embeddings.vectorstores._records import (
    BAD_VECTOR_CODE,
    bad_vector_rows,
    model_record,
)

if TYPE_CHECKING:
    from langchain_image_embeddings.embeddings import ImageEmbeddings

__all__ = [
    "EmbedSettings",
    "Progress",
    "RunSummary",
    "ShardDone",
    "embed_dataset",
    "embed_shard",
    "pending_shards",
    "prepare_out_dir",
    "read_input",
    "store_batch",
    "writing_shards",
]


#: ``ImageEmbeddings`` fields that never travel to another process (they are local to it).
_LOCAL_FIELDS = frozenset({"model", "show_progress", "progress_callback"})


class EmbedSettings:
    """How to build the model in another process (a Ray actor): the spec and every other
    ``ImageEmbeddings`` option (batch size, device, runtime, decode threads, limits ...),
    everything but the loaded weights.

    Args:
        model: Encoder spec (``"timm:efficientnet_lite0"``, ``"local:DIR"`` ...).
        **options: Keyword arguments of :class:`~langchain_image_embeddings.ImageEmbeddings`.

    Example:
        >>> settings = EmbedSettings("timm:efficientnet_lite0", batch_size=64)
        >>> settings.batch_size, settings.device
        (64, 'auto')
    """

    def __init__(self, model: str, **options: Any) -> None:
        unknown = set(options) - _embedding_fields()
        if unknown:
            raise ValueError(f"not ImageEmbeddings options: {', '.join(sorted(unknown))}")
        self.model = model
        self.options: dict[str, Any] = options

    def __repr__(self) -> str:
        return f"EmbedSettings({self.model!r}, **{self.options!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmbedSettings) and (self.model, self.options) == (
            other.model,
            other.options,
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def batch_size(self) -> int:
        """Images per forward pass."""
        return int(self.options.get("batch_size", _default("batch_size")))

    @property
    def device(self) -> str:
        """The device asked for (``"auto"`` by default)."""
        return str(self.options.get("device", _default("device")))

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """Encoder options (``pretrained`` ...)."""
        return dict(self.options.get("model_kwargs") or {})

    @property
    def load_options(self) -> ImageLoadOptions:
        """Limits for reading images."""
        value = self.options.get("load_options")
        return value if isinstance(value, ImageLoadOptions) else ImageLoadOptions()

    def with_options(self, **options: Any) -> EmbedSettings:
        """A copy with some options replaced."""
        return EmbedSettings(self.model, **{**self.options, **options})

    @classmethod
    def of(cls, embeddings: ImageEmbeddings) -> EmbedSettings:
        """The settings of an ``ImageEmbeddings`` built from a spec string.

        Raises:
            EncoderError: It wraps an encoder object, which cannot be rebuilt elsewhere.
        """
        if not isinstance(embeddings.model, str):
            raise EncoderError(
                f"{embeddings.model!r} is an encoder object; the Ray engine rebuilds the model "
                "in every actor from a spec: pass ImageEmbeddings('backend:name', ...) (a saved "
                "model: 'local:DIR')"
            )
        fields = _embedding_fields()
        return cls(embeddings.model, **{name: getattr(embeddings, name) for name in fields})

    def create(self, device: str | None = None) -> ImageEmbeddings:
        """A new ``ImageEmbeddings`` with these settings (on ``device`` if given)."""
        from langchain_image_embeddings.embeddings import ImageEmbeddings

        options = dict(self.options)
        if device is not None:
            options["device"] = device
        return ImageEmbeddings(self.model, **options)


def _embedding_fields() -> set[str]:
    from langchain_image_embeddings.embeddings import ImageEmbeddings

    return set(ImageEmbeddings.model_fields) - _LOCAL_FIELDS


def _default(name: str) -> Any:
    from langchain_image_embeddings.embeddings import ImageEmbeddings

    return ImageEmbeddings.model_fields[name].get_default(call_default_factory=True)


@dataclass(frozen=True)
class ShardDone:
    """Progress event after each shard: written now or skipped (already complete).

    Attributes:
        shard: The shard.
        written: False when its file was already complete.
        images: Inputs in the shard.
        failures: Inputs that failed (from the file's metadata when skipped).
    """

    shard: Shard
    written: bool
    images: int
    failures: int


@dataclass
class RunSummary:
    """What an ``embed_dataset`` run did.

    Attributes:
        engine: ``"local"`` or ``"ray"``.
        images: Inputs in the plan.
        embedded: Images embedded by this run (shards written now).
        failures: ``(source, code, reason)`` of the inputs that failed in this run.
        shards_written: Shard files written by this run.
        shards_skipped: Shards already complete (not embedded again).
        seconds: Wall time of the run (model loading included).
        stale: Shard files in the folder that the plan does not have (from another source).

    Example:
        .. code-block:: python

            summary = embed_dataset("photos", "shards", embeddings)
            print(summary.embedded, summary.images_per_second, summary.shards_skipped)
    """

    engine: str
    images: int = 0
    embedded: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    shards_written: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    stale: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        """Images read (embedded or failed) by this run per second of wall time."""
        done = self.embedded + len(self.failures)
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "engine": self.engine,
            "images": self.images,
            "embedded": self.embedded,
            "failed": len(self.failures),
            "shards_written": self.shards_written,
            "shards_skipped": self.shards_skipped,
            "seconds": round(self.seconds, 2),
            "images_per_second": round(self.images_per_second, 1),
            "stale_shards": self.stale,
            "errors": [{"input": s, "code": c, "reason": r} for s, c, r in self.failures],
        }

    def record(self, rows: ShardRows) -> None:
        """Count a shard written by this run."""
        self.shards_written += 1
        for pos, err in enumerate(rows.errors):
            if err is None:
                self.embedded += 1
            else:
                meta = rows.metas[pos]
                source = str(meta["source"]) if meta else rows.shard.inputs[pos]
                self.failures.append((source, err[0], err[1]))


Progress = Callable[[ShardDone], None]


def read_input(uri: str, options: ImageLoadOptions) -> ImageSource:
    """Read one planned input (bytes + metadata), as every engine does.

    :func:`~langchain_image_embeddings.images.read_image_source`, except for a local PDF
    given as a whole file: that is a PDF the plan could not list (or one planned without
    ``pdf``), and it is reported with the PDF's own error (``encrypted``, ``truncated``,
    ``corrupt``, ``too_many_pages``, ``timeout`` ...) when it has one.

    Raises:
        ImageLoadError: The input cannot be read, naming it and the reason.
    """
    try:
        return read_image_source(uri, options)
    except ImageLoadError as err:
        if err.code != "unsupported_format" or not _local_pdf_file(uri):
            raise
        from langchain_image_embeddings.documents import PDFOptions, pdf_documents

        # the listing the plan did (pages only: the cheapest one that hits every cap)
        pdf_documents(uri, options, PDFOptions(figures=False, max_text_chars=0))
        raise  # a readable PDF planned without pdf=True: the hint to plan its pages


def _local_pdf_file(uri: str) -> bool:
    return (
        is_pdf_path(uri)
        and parse_address(uri) is None
        and "://" not in uri
        and not uri.startswith("data:")
    )


def embed_shard(shard: Shard, embeddings: ImageEmbeddings) -> ShardRows:
    """Read and embed one shard with ``embeddings``' pipeline; failures become error rows.

    Example:
        .. code-block:: python

            rows = embed_shard(plan.shards[0], ImageEmbeddings("timm:efficientnet_lite0"))
            rows.failures, rows.vectors.shape
    """
    import numpy as np

    n = len(shard)
    metas: list[dict[str, Any] | None] = [None] * n
    errors: list[tuple[str, str] | None] = [None] * n
    vectors = np.zeros((n, int(embeddings.dim)), dtype=np.float32)
    readable: list[int] = []  # shard position of each input handed to the pipeline

    def payloads() -> Iterator[bytes]:
        for pos, uri in enumerate(shard.inputs):
            try:
                read = read_input(uri, embeddings.load_options)
                meta, data = read.metadata, read.data
            except ImageLoadError as err:
                errors[pos] = (err.code, err.reason)
                # the source as the error names it (absolute path), as the Ray reads record it
                metas[pos] = {"source": err.source}
                continue
            metas[pos] = meta
            readable.append(pos)
            yield data

    for batch in embeddings.pipeline("skip").run(payloads()):
        store_batch(batch.indices, batch.vectors, batch.errors, readable, vectors, errors)
    return ShardRows(shard, metas, vectors, errors)


def store_batch(
    indices: list[int],
    batch_vectors: Any,
    batch_errors: list[ImageLoadError],
    positions: list[int],
    vectors: Any,
    errors: list[tuple[str, str] | None],
) -> None:
    """Put a pipeline batch into a shard's arrays: ``positions[i]`` is where pipeline input
    ``i`` sits in the shard. NaN/inf/zero vectors become ``invalid_vector`` failures."""
    for err in batch_errors:
        errors[positions[err.index or 0]] = (err.code, err.reason)
    bad = bad_vector_rows(batch_vectors) if len(indices) else {}
    for row, index in enumerate(indices):
        pos = positions[index]
        if row in bad:
            errors[pos] = (BAD_VECTOR_CODE, bad[row])
        else:
            vectors[pos] = batch_vectors[row]


@contextlib.contextmanager
def writing_shards(
    out_dir: str | os.PathLike[str], plan: ShardPlan
) -> Iterator[tuple[Path, list[str]]]:
    """Hold the shard folder's writer lock for a run; yields :func:`prepare_out_dir`'s result.

    Two runs into one folder would delete each other's in-flight temporary files; the second
    one fails at once instead.

    Raises:
        StoreLockedError: Another process is writing shards into ``out_dir``.
        StoreError: ``out_dir`` is a file, or cannot be created.
    """
    from langchain_image_embeddings._locks import StoreLock

    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{out_dir} is a file, not a folder for shard files")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in its path, no permission ...
        raise StoreError(f"cannot create the shard folder {out_dir}: {exc.strerror}") from exc
    lock = StoreLock(out_dir)
    try:
        lock.acquire()
    except StoreLockedError as exc:
        raise StoreLockedError(
            f"{out_dir} is being written by another embed-dataset run ({exc}); wait for it, "
            "or write into another folder"
        ) from exc
    try:
        yield prepare_out_dir(out_dir, plan)
    finally:
        lock.release()


def prepare_out_dir(out_dir: str | os.PathLike[str], plan: ShardPlan) -> tuple[Path, list[str]]:
    """Create the output folder, delete temporary files of a killed run, list stale shards."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_partial_files(out)
    planned = {s.file_name for s in plan.shards}
    try:
        existing = shard_files(out)
    except Exception:  # an empty folder: nothing stale
        existing = []
    return out, [p.name for p in existing if p.name not in planned]


def pending_shards(
    plan: ShardPlan,
    out: Path,
    record: dict[str, Any],
    summary: RunSummary,
    progress: Progress | None,
) -> list[Shard]:
    """The shards of ``plan`` not yet complete in ``out``; the complete ones are counted as
    skipped in ``summary`` and reported to ``progress`` (every engine resumes this way).

    Raises:
        ModelMismatchError: ``out`` holds a shard of another model.
    """
    pending: list[Shard] = []
    for shard in plan.shards:
        path = out / shard.file_name
        if is_complete(path, shard, record):
            summary.shards_skipped += 1
            if progress is not None:
                progress(ShardDone(shard, False, len(shard), read_shard_info(path).failures))
        else:
            pending.append(shard)
    return pending


def embed_dataset(
    plan: ShardPlan,
    out_dir: str | os.PathLike[str],
    embeddings: ImageEmbeddings,
    *,
    progress: Progress | None = None,
) -> RunSummary:
    """Embed every shard of ``plan`` not yet complete in ``out_dir``, in this process.

    Args:
        plan: From :func:`~langchain_image_embeddings.scale.plan.plan_shards`.
        out_dir: Folder of the shard files (created).
        embeddings: The model (its batch size, decode threads and limits apply).
        progress: Called after every shard (written or skipped).

    Returns:
        What was embedded, skipped and what failed.

    Raises:
        ModelMismatchError: ``out_dir`` holds shards of another model.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.scale import embed_dataset, plan_shards

            plan = plan_shards("photos", shard_size=1000)
            summary = embed_dataset(plan, "shards", ImageEmbeddings("timm:efficientnet_lite0"))
    """
    started = time.perf_counter()
    with writing_shards(out_dir, plan) as (out, stale):
        summary = RunSummary("local", images=plan.total, stale=stale)
        record = model_record(embeddings)
        for shard in pending_shards(plan, out, record, summary, progress):
            rows = embed_shard(shard, embeddings)
            write_shard(out, rows, record, dict(embeddings.model_kwargs))
            summary.record(rows)
            if progress is not None:
                progress(ShardDone(shard, True, len(shard), rows.failures))
    summary.seconds = time.perf_counter() - started
    return summary
