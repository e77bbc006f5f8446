"""Chroma clients and calls: settings, client creation, retries, open races, collection info.

Every call to Chroma goes through :func:`call_chroma`: connection failures (server down,
refused, timed out) are retried a bounded number of times with exponential backoff
(:data:`RETRIES`, :data:`BACKOFF_S`), then raised as
:class:`~langchain_image_embeddings.errors.StoreError`, like any other Chroma error. The
storage over a collection is :mod:`~langchain_image_embeddings.vectorstores.chroma._backend`,
the store :mod:`~langchain_image_embeddings.vectorstores.chroma._store`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._retry import call_with_retries

if TYPE_CHECKING:
    import os


DEFAULT_COLLECTION = "images"
#: Collection metadata keys recording the model start with this.
META_PREFIX = "imgemb_"

#: Tries of one Chroma call when the connection fails (refused, reset, timed out).
RETRIES = 3
#: Wait before the second try; doubled before each further one.
BACKOFF_S = 0.2

#: Tries to open an embedded folder whose SQLite database another process holds locked.
OPEN_LOCKED_TRIES = 6

_T = TypeVar("_T")


def _chromadb_sends_telemetry() -> bool:
    """Whether the installed chromadb can send product telemetry: releases that depend on
    ``posthog``; newer ones made it a no-op and dropped the dependency (chroma#6489)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        return any(req.lower().startswith("posthog") for req in requires("chromadb") or [])
    except PackageNotFoundError:  # pragma: no cover - chromadb imported without metadata
        return True


def client_settings() -> Any:
    """The chromadb ``Settings`` of every client this package makes.

    chromadb's defaults where telemetry is a no-op: chromadb allows one set of settings
    per folder (and one for the in-memory client) in a process, so other settings would
    make the user's own clients of the same folder, and langchain-chroma's
    ``Chroma(persist_directory=...)``, fail with "already exists ... with different
    settings". On a chromadb that still sends telemetry, telemetry is turned off instead.
    """
    require("chromadb", "chromadb")
    from chromadb.config import Settings

    if _chromadb_sends_telemetry():
        return Settings(anonymized_telemetry=False)
    return Settings()


def make_client(kind: str, **kwargs: Any) -> Any:
    """``chromadb.<kind>(**kwargs)`` with :func:`client_settings`, or with the settings of
    the client of that folder (server, or the in-memory one) this process already runs:
    chromadb refuses a second client "with different settings", and the first one may be
    the user's (chromadb's defaults) or one made with telemetry turned off."""
    chromadb = require("chromadb", "chromadb")
    from chromadb.config import Settings

    factory = getattr(chromadb, kind)
    preferred = client_settings()
    # The one other choice: chromadb's defaults, or those with telemetry turned off.
    other = Settings(anonymized_telemetry=not preferred.anonymized_telemetry)
    tries = [preferred, other]
    for number, settings in enumerate(tries, start=1):
        try:
            return factory(settings=settings, **kwargs)
        except ValueError as exc:
            if "different settings" not in str(exc) or number == len(tries):
                raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def forget_unstarted_system(path: str) -> None:
    """Drop the client system chromadb caches for ``path`` when its start failed.

    chromadb keeps a system whose start raised in its per-path cache, and every later
    client for that path then fails ("object has no attribute 'bindings'"); a system no
    client holds is dropped so that a retry starts afresh.
    """
    with contextlib.suppress(Exception):
        from chromadb.api.shared_system_client import SharedSystemClient

        with SharedSystemClient._refcount_lock:
            if SharedSystemClient._identifier_to_refcount.get(path, 0) <= 0:
                system = SharedSystemClient._identifier_to_system.pop(path, None)
                if system is not None:
                    with contextlib.suppress(Exception):
                        system.stop()


_OPEN_RACE = re.compile(r"database is (locked|busy)|table \S+ already exists")


def is_open_race(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) comes from another process opening or writing the
    folder at the same moment: SQLite's "database is locked"/"busy", or a schema migration
    the other process just ran ("table ... already exists")."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _OPEN_RACE.search(str(current).lower()):
            return True
        current = current.__cause__ or current.__context__
    return False


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the Chroma server cannot be reached (worth another try)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - chromadb depends on httpx
        return False
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, ValueError) and "could not connect" in str(exc).lower()


def call_chroma(
    what: str,
    fn: Callable[..., _T],
    *args: Any,
    retries: int = RETRIES,
    backoff_s: float = BACKOFF_S,
    **kwargs: Any,
) -> _T:
    """Call ``fn``; retry connection failures ``retries`` times in all, then raise ``StoreError``.

    Any other exception from Chroma is raised at once as :class:`StoreError` (our own
    :class:`StoreError` subclasses pass through unchanged).

    Example:
        .. code-block:: python

            count = call_chroma("count", collection.count)
    """
    return call_with_retries(
        "Chroma",
        what,
        fn,
        *args,
        is_connection_error=is_connection_error,
        retries=retries,
        backoff_s=backoff_s,
        **kwargs,
    )


def stored_record(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The model record in a collection's metadata (``{}`` when none)."""
    meta = metadata or {}
    return {k[len(META_PREFIX) :]: v for k, v in meta.items() if k.startswith(META_PREFIX)}


def chroma_info(
    collection_name: str = DEFAULT_COLLECTION,
    *,
    path: str | os.PathLike[str] | None = None,
    host: str = "",
    port: int = 0,
) -> dict[str, Any]:
    """What a collection (embedded folder ``path``, else on ``host:port``) holds and which
    model wrote it, without loading the model.

    Raises:
        StoreError: No such folder or collection, or the server cannot be reached.
    """
    require("chromadb", "chromadb")
    where = str(path) if path is not None else f"{host}:{port}"
    try:
        if path is not None:
            if not Path(path).is_dir():
                raise StoreError(f"no Chroma store at {path}")
            client = make_client("PersistentClient", path=str(path))
        else:
            client = make_client("HttpClient", host=host, port=int(port))
        collection = client.get_collection(collection_name)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(
            f"cannot open Chroma collection {collection_name!r} of {where}: {exc}"
        ) from exc
    record = stored_record(collection.metadata)
    return {
        "count": int(collection.count()),
        "model": record.get("model"),
        "dim": record.get("dim"),
        "metric": (collection.configuration.get("hnsw") or {}).get("space"),
    }
