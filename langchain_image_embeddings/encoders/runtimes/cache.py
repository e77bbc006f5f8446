"""The on-disk cache of exported models: one directory per key, built once, checked on load.

Layout under :func:`cache_root` (``$IMGEMB_CACHE_DIR``, else
``$XDG_CACHE_HOME/langchain-image-embeddings/runtimes``, else
``~/.cache/langchain-image-embeddings/runtimes``)::

    <sha256 of the key>/          one entry: the exported files + manifest.json
    <sha256 of the key>.lock/     the builders' lock (an empty folder, flock'ed)

Why it is safe:

* **Two processes exporting at once.** Builders take an exclusive ``flock`` on the
  entry's lock folder (:class:`~langchain_image_embeddings._locks.StoreLock`,
  polled, so a second process waits for the first and then loads its entry instead of
  exporting again); threads of one process serialise on an in-process lock first, since a
  ``flock`` is shared by the whole process.
* **A torn write.** An entry is built in a temporary folder beside it, every file is
  fsynced, ``manifest.json`` (the key and each file's size and SHA-256) is written last,
  and the folder is renamed into place: a reader sees a complete entry or none.
* **A corrupt entry** (a truncated or garbled file, a missing manifest): every load
  re-hashes the files against the manifest; on a mismatch the entry is moved aside and
  rebuilt, never loaded. A caller may also refuse an intact entry whose content it cannot
  use (``valid=``, e.g. a remembered runtime choice in an older format): it is rebuilt too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_image_embeddings._atomic import fsync_dir, sha256_file, write_atomic
from langchain_image_embeddings._locks import StoreLock
from langchain_image_embeddings.errors import EncoderError, StoreLockedError

__all__ = [
    "CACHE_ENV",
    "LOCK_TIMEOUT_S",
    "MANIFEST",
    "CacheEntry",
    "ExportCache",
    "cache_root",
    "key_digest",
]


logger = logging.getLogger(__name__)

#: Environment variable overriding the cache folder.
CACHE_ENV = "IMGEMB_CACHE_DIR"
MANIFEST = "manifest.json"
#: Seconds a process waits for another one's export before giving up.
LOCK_TIMEOUT_S = 1800.0
_POLL_S = 0.1

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def cache_root(directory: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``directory``, else ``$IMGEMB_CACHE_DIR``, else the XDG cache.

    Example:
        >>> import os; os.environ["IMGEMB_CACHE_DIR"] = "/tmp/imgemb-cache"
        >>> str(cache_root())
        '/tmp/imgemb-cache'
    """
    if directory is not None:
        return Path(directory).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "langchain-image-embeddings" / "runtimes"


def key_digest(key: Mapping[str, Any]) -> str:
    """A stable hex digest of a JSON-serialisable key (sorted keys, no whitespace)."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class CacheEntry:
    """A verified cache entry.

    Attributes:
        path: The entry folder (its files are the exported model).
        built: Whether this call built it (``False``: it was loaded from the cache).
        manifest: The entry's manifest (``key``, ``files``, ``created``, ``pid``).

    Example:
        .. code-block:: python

            entry = ExportCache("/tmp/imgemb-cache").get_or_build({"model": "demo"}, build)
            print(entry.built, entry.manifest["pid"])   # False when another process built it
    """

    path: Path
    built: bool
    manifest: dict[str, Any]


class ExportCache:
    """Build-once, verify-on-load storage for exported models.

    Args:
        root: The cache folder (default: :func:`cache_root`).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.encoders.runtimes.cache import ExportCache

            cache = ExportCache("/tmp/imgemb-cache")
            entry = cache.get_or_build(
                {"model": "demo"}, lambda folder: (folder / "model.txt").write_text("hi")
            )
            print(entry.path / "model.txt", entry.built)
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = cache_root(root)

    def entry_path(self, key: Mapping[str, Any]) -> Path:
        """Where the entry for ``key`` lives (it may not exist)."""
        return self.root / key_digest(key)

    def get_or_build(
        self,
        key: Mapping[str, Any],
        build: Callable[[Path], object],
        *,
        valid: Callable[[Path], bool] | None = None,
        rebuild: bool = False,
    ) -> CacheEntry:
        """The verified entry for ``key``, building it with ``build(folder)`` if needed.

        Args:
            key: What determines the files (JSON-serialisable); its digest names the entry.
            build: Writes the entry's files into the (empty, temporary) folder it is given.
            valid: Called with an intact entry's folder; ``False`` (or an exception) means
                its content is unusable (stale) and it is rebuilt like a corrupt one.
            rebuild: Build anew even when a valid entry exists (still under the lock, so
                concurrent readers see the old entry or the new one, never a mix).

        Raises:
            EncoderError: Another process held the export lock for :data:`LOCK_TIMEOUT_S`.
        """
        path = self.entry_path(key)
        manifest = None if rebuild else self._verified(path, key, valid)
        if manifest is not None:
            return CacheEntry(path, False, manifest)
        with self._locked(path):
            # Another process may have built it while this one waited for the lock.
            manifest = None if rebuild else self._verified(path, key, valid)
            if manifest is not None:
                return CacheEntry(path, False, manifest)
            manifest = self._build(path, key, build)
        return CacheEntry(path, True, manifest)

    def peek(
        self, key: Mapping[str, Any], *, valid: Callable[[Path], bool] | None = None
    ) -> CacheEntry | None:
        """The verified entry for ``key`` if there is one; never builds, never locks."""
        path = self.entry_path(key)
        manifest = self._verified(path, key, valid)
        return None if manifest is None else CacheEntry(path, False, manifest)

    # -- internals ------------------------------------------------------------------------
    def _verified(
        self,
        path: Path,
        key: Mapping[str, Any],
        valid: Callable[[Path], bool] | None = None,
    ) -> dict[str, Any] | None:
        """The manifest when every file matches it, else ``None`` (a bad entry is logged)."""
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            return None
        try:
            manifest: dict[str, Any] = json.loads(manifest_path.read_text())
            files: dict[str, dict[str, Any]] = manifest["files"]
            for name, meta in files.items():
                file = path / name
                if file.stat().st_size != meta["size"] or sha256_file(file) != meta["sha256"]:
                    raise ValueError(f"{name} does not match its checksum")
            if key_digest(manifest["key"]) != key_digest(key):
                raise ValueError("the manifest records another key")
            if valid is not None and not valid(path):
                raise ValueError("its content is stale")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("cache entry %s is unusable (%s): it is rebuilt", path, exc)
            return None
        return manifest

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Any:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, a read-only or virtual file system
            raise EncoderError(
                f"cannot create the export cache folder {self.root}: {exc.strerror or exc}; "
                f"set ${CACHE_ENV} to a writable folder"
            ) from exc
        name = str(path)
        with _GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(name, threading.Lock())
        with thread_lock:
            lock = StoreLock(path.with_name(path.name + ".lock"))
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while True:
                try:
                    lock.acquire()
                    break
                except StoreLockedError as exc:
                    if time.monotonic() > deadline:
                        raise EncoderError(
                            f"gave up waiting for another process exporting into {path} "
                            f"after {LOCK_TIMEOUT_S:.0f} s; remove {path}.lock if it is stale"
                        ) from exc
                    time.sleep(_POLL_S)
            try:
                yield
            finally:
                lock.release()

    def _build(
        self, path: Path, key: Mapping[str, Any], build: Callable[[Path], object]
    ) -> dict[str, Any]:
        # Under the lock, a leftover temporary folder of this entry is a dead builder's.
        for leftover in self.root.glob(f".{path.name}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        tmp.mkdir(parents=True)
        try:
            started = time.perf_counter()
            build(tmp)
            files = {}
            for file in sorted(p for p in tmp.iterdir() if p.is_file()):
                _fsync(file)
                files[file.name] = {"size": file.stat().st_size, "sha256": sha256_file(file)}
            manifest = {
                "key": dict(key),
                "files": files,
                "created": time.time(),
                "pid": os.getpid(),
                "build_seconds": round(time.perf_counter() - started, 3),
            }
            # Written last: a folder without a valid manifest is never loaded.
            write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1, default=str).encode())
            if path.exists():  # a corrupt entry: move it aside, then drop it
                stale = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.stale")
                os.replace(path, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, path)
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("exported %s in %.1f s", path, manifest["build_seconds"])
        return manifest


def _fsync(file: Path) -> None:
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
