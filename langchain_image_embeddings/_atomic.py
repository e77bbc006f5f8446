"""File helpers: the one way the package writes a file (atomically, durably) and hashes one.

:func:`write_atomic_with` lets a writer fill a temporary file in the target's folder, fsyncs
it, renames it over the target with :func:`os.replace` (atomic on POSIX and Windows) and
fsyncs the folder, so that after a crash at any moment the target holds either its old
content or the new one, never a torn mix, and a returned write survives a power cut.
:func:`write_atomic` does the same for bytes already in memory.

Temporary files are named ``<target name>.<token>.tmp`` in the target's folder; a crash can
leave one behind, which callers that own the folder may delete (see :data:`TMP_SUFFIX`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

#: Suffix of the temporary files :func:`write_atomic_with` writes (and deletes on failure).
TMP_SUFFIX = ".tmp"


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic_with(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Create or replace ``path`` with what ``write`` puts in the temporary file it is given.

    Args:
        path: The target file; its folder must exist.
        write: Called once with the temporary file's path (in the target's folder); it
            writes the complete new content there (e.g. ``np.save``, ``save_model``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: The write, fsync or rename failed; the target is unchanged and the
            temporary file removed.

    Example:
        .. code-block:: python

            from langchain_image_embeddings._atomic import write_atomic_with

            write_atomic_with("out.txt", lambda tmp: tmp.write_text("hello"))
    """
    target = Path(path)
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)
    return target


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create or replace ``path`` with ``data`` atomically and durably.

    Example:
        .. code-block:: python

            from langchain_image_embeddings._atomic import write_atomic

            write_atomic("metrics.json", b'{"recall": 0.9}')
    """

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write_atomic_with(path, write)


_CHUNK = 1 << 20


def sha256_file(file: str | os.PathLike[str] | IO[bytes]) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB chunks (a path, or a binary file
    object read from its current position to the end).

    Example:
        .. code-block:: python

            from langchain_image_embeddings._atomic import sha256_file

            sha256_file("photo.jpg")
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as fh:
            return sha256_file(fh)
    digest = hashlib.sha256()
    for chunk in iter(lambda: file.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()
