"""One writer at a time per store directory: a non-blocking exclusive ``flock``.

The lock is taken on the store directory itself (an ``O_RDONLY`` descriptor of the
folder), so it adds no file to the store; the kernel drops it when the holding process
exits, ``kill -9`` included, so a crashed writer never leaves a stale lock behind.
Within one process, several store objects on the same directory share one lock
(reference-counted); the FAISS store's generation check keeps them from overwriting each
other's saves. Readers never take the lock.

On platforms without ``fcntl`` (Windows) locking is a no-op.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from langchain_image_embeddings.errors import StoreError, StoreLockedError

_HELD: dict[str, list[int]] = {}  # realpath -> [fd, refcount]
_GUARD = threading.Lock()


def _holder_pid(fd: int) -> int | None:
    """The PID holding a ``flock`` on the file of ``fd``, from ``/proc/locks`` (Linux)."""
    try:
        st = os.fstat(fd)
        with open("/proc/locks", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    inode = f":{st.st_ino}"
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 08:01:6789 0 EOF" (a "->" marks a blocked waiter)
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[5].endswith(inode) and parts[4].isdigit() and int(parts[4]) != os.getpid():
            return int(parts[4])
    return None


class StoreLock:
    """An exclusive, non-blocking writer lock on a store directory.

    Example:
        .. code-block:: python

            lock = StoreLock("index")
            lock.acquire()          # StoreLockedError if another process writes there
            try:
                ...                 # write the store
            finally:
                lock.release()
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._key: str | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._key is not None

    def acquire(self) -> None:
        """Take the lock (creating the directory if needed); no-op if already held.

        Raises:
            StoreLockedError: Another process holds it.
            StoreError: The directory cannot be created (a file in the way, permissions).
        """
        if self._key is not None:
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, read-only disk
            raise StoreError(f"cannot use {self.directory} as a store folder: {exc}") from exc
        key = os.path.realpath(self.directory)
        with _GUARD:
            entry = _HELD.get(key)
            if entry is not None:
                entry[1] += 1
                self._key = key
                return
            fd = os.open(key, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                pid = _holder_pid(fd)
                os.close(fd)
                who = f" (held by pid {pid})" if pid else ""
                raise StoreLockedError(
                    f"store locked: {self.directory} is being written by another process{who}; "
                    "only one writer at a time may open a store directory - wait for it to "
                    "finish, or read the store without writing"
                ) from exc
            _HELD[key] = [fd, 1]
            self._key = key

    def release(self) -> None:
        """Give the lock back (the last holder in this process unlocks the directory)."""
        key, self._key = self._key, None
        if key is None:
            return
        with _GUARD:
            entry = _HELD.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del _HELD[key]
                os.close(entry[0])  # closing the only descriptor drops the flock
