"""Exceptions raised by the package.

Every failure that concerns one input carries that input (a path, URL, or a short
description of an in-memory object), its position in a batch when there is one, a
machine-readable ``code`` from a fixed vocabulary, and a reason a person understands.
"""

from __future__ import annotations

from typing import Any, Final, Literal

__all__ = [
    "IMAGE_ERROR_CODES",
    "EncoderError",
    "ImageEmbeddingsError",
    "ImageLoadError",
    "MilvusImportError",
    "MissingDependencyError",
    "ModelMismatchError",
    "OnError",
    "StoreError",
    "StoreLockedError",
    "WeightsNotFoundError",
]

OnError = Literal["raise", "skip"]
"""What a batch operation does with an unreadable input: ``"raise"`` stops at the first one;
``"skip"`` reports it (with its index and code) and goes on."""

#: The fixed vocabulary of :attr:`ImageLoadError.code`. Applications may switch on these.
IMAGE_ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        "not_found",  # the path does not exist
        "not_a_file",  # a directory, FIFO, device, socket ...
        "outside_root",  # a path escaping ImageLoadOptions.root (.. or a symlink)
        "empty",  # zero bytes
        "too_large",  # file or download over the byte cap
        "unsupported_format",  # not an image, or a format outside the allow-list
        "truncated",  # the image data ends early
        "corrupt",  # the decoder failed on the data
        "decompression_bomb",  # more pixels than the configured limit
        "bad_geometry",  # zero-sized or absurd aspect ratio
        "unsupported_scheme",  # e.g. ftp://, s3://
        "remote_disabled",  # a URL while remote fetching is off
        "blocked_url",  # a URL resolving to a loopback/private/link-local/... address
        "fetch_failed",  # network error, HTTP error status, timeout
        "invalid_base64",  # a data: URI whose payload is not valid base64
        "invalid_array",  # a numpy array with a shape/dtype/value we cannot read
        "invalid_input",  # an object of a type we do not accept
        "invalid_vector",  # the model produced NaN/inf or a zero vector: never stored
        "changed",  # the bytes read to decode differ from those hashed when it was described
        "encrypted",  # a PDF that needs a password
        "too_many_pages",  # a PDF with more pages than ImageLoadOptions.max_pdf_pages
        "timeout",  # a document whose pages took longer to list than the loader's time cap
    }
)


class ImageEmbeddingsError(Exception):
    """Base class of every exception raised by ``langchain_image_embeddings``."""


class ImageLoadError(ImageEmbeddingsError, ValueError):
    """An input could not be turned into an RGB image.

    Attributes:
        source: The offending input as a short string (path, URL, or description).
        reason: What went wrong, for a person.
        code: One of :data:`IMAGE_ERROR_CODES`, for a program.
        index: Position of the input in the batch, or ``None`` for a single input.
    """

    def __init__(self, source: str, reason: str, code: str, index: int | None = None) -> None:
        if code not in IMAGE_ERROR_CODES:
            raise ValueError(f"unknown image error code {code!r}")
        self.source = source
        self.reason = reason
        self.code = code
        self.index = index
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"input #{self.index} " if self.index is not None else ""
        return f"{where}{self.source}: {self.reason} [{self.code}]"

    def with_index(self, index: int) -> ImageLoadError:
        """Return a copy of this error that also names the input's position in its batch."""
        err = ImageLoadError(self.source, self.reason, self.code, index)
        err.__cause__ = self.__cause__
        return err

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[str, str, str, int | None]]:
        return (ImageLoadError, (self.source, self.reason, self.code, self.index))


class EncoderError(ImageEmbeddingsError):
    """An encoder could not be created or used (unknown spec, bad option, missing tower)."""


class WeightsNotFoundError(EncoderError):
    """Pretrained weights could not be loaded (offline, missing file, unknown tag).

    The message names the model, where we looked, and how to supply a local file.
    """


class MissingDependencyError(ImageEmbeddingsError, ImportError):
    """An optional backend is not installed; the message names the ``pip install`` to run."""


class StoreError(ImageEmbeddingsError):
    """A vector store could not be opened, read or written (missing, torn or corrupt files)."""


class ModelMismatchError(StoreError):
    """A store was opened with a model other than the one that wrote its vectors."""


class MilvusImportError(StoreError):
    """A Milvus import job could not be created, failed, or did not finish in time.

    Attributes:
        job_id: The job's id (``None`` when no job was created).
        file: The import file the server named as failing, where it named one.
        reason: The server's reason (or what went wrong on the way to it).

    Example:
        >>> err = MilvusImportError("import job 7 failed", job_id="7", reason="bad dim")
        >>> err.job_id, err.reason
        ('7', 'bad dim')
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        file: str | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.file = file
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (_milvus_import_error, (str(self), self.job_id, self.file, self.reason))


def _milvus_import_error(
    message: str, job_id: str | None, file: str | None, reason: str
) -> MilvusImportError:
    return MilvusImportError(message, job_id=job_id, file=file, reason=reason)


class StoreLockedError(StoreError):
    """Another writer holds a store directory: only one writer at a time (the message names
    the directory and, where known, the PID holding it)."""
