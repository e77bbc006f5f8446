"""Calls to Milvus: retries of connection failures, errors as ``StoreError``, quiet logs.

Every call the Milvus store makes goes through :func:`call_milvus`: a connection failure
(refused, unavailable, timed out) is tried :data:`RETRIES` times with a backoff from
:data:`BACKOFF_S`, then raised as :class:`~langchain_image_embeddings.errors.StoreError`, like
any other Milvus error; pymilvus's own traceback per failed RPC is kept off the logs meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.vectorstores._retry import call_with_retries

__all__ = ["BACKOFF_S", "RETRIES", "TIMEOUT_S", "call_milvus", "connect", "on_new_client"]

#: Tries of one Milvus call when the connection fails (refused, unavailable, timed out).
RETRIES = 3
#: Wait before the second try; doubled before each further one.
BACKOFF_S = 0.2
#: Seconds one Milvus call may take.
TIMEOUT_S = 30.0

_T = TypeVar("_T")

_quiet = threading.local()


class _QuietInsideCalls(logging.Filter):
    """Drop pymilvus's own error logs (a traceback per failed RPC) inside :func:`call_milvus`:
    the error is raised to the caller as a ``StoreError`` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


#: The pymilvus loggers that report a failed call: the retry decorator's lines, the connection
#: manager's "Connection recovery failed" with a gRPC traceback (three per outage, logged on the
#: calling thread while the decorator retries), the gRPC handler's channel lines and the query
#: iterator's. pymilvus gives its ``pymilvus`` logger its own stderr handler that does not
#: propagate, so these reach stderr even when the application configured no logging; a filter
#: on each of these loggers stops a record before any handler sees it.
_QUIET_LOGGERS = (
    "pymilvus.decorators",
    "pymilvus.client.connection_manager",
    "pymilvus.client.grpc_handler",
    "pymilvus.client.global_topology",
    "pymilvus.client.iterator.query_iterator",
)
_filter_installed = False


def _install_quiet_filter() -> None:
    global _filter_installed
    if not _filter_installed:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).addFilter(_QuietInsideCalls())
        _filter_installed = True


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    _install_quiet_filter()
    before = getattr(_quiet, "on", False)
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = before


def _is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the server cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        code = getattr(current, "code", None)
        if callable(code):  # grpc.RpcError
            with contextlib.suppress(Exception):
                if getattr(code(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                    return True
        text = str(current).lower()
        if "fail connecting to server" in text or "server unavailable" in text:
            return True
        if type(current).__name__ == "MilvusUnavailableException":
            return True
        current = current.__cause__ or current.__context__
    return False


def call_milvus(
    what: str,
    fn: Callable[..., _T],
    *args: Any,
    retries: int = RETRIES,
    backoff_s: float = BACKOFF_S,
    **kwargs: Any,
) -> _T:
    """Call ``fn``; retry connection failures ``retries`` times in all, then raise ``StoreError``.

    Any other exception from Milvus is raised at once as :class:`StoreError` (our own
    :class:`StoreError` subclasses pass through unchanged).

    Example:
        .. code-block:: python

            names = call_milvus("list collections", client.list_collections)
    """
    return call_with_retries(
        "Milvus",
        what,
        fn,
        *args,
        is_connection_error=_is_connection_error,
        retries=retries,
        backoff_s=backoff_s,
        quiet=_quiet_logs,
        describe=_message,
        **kwargs,
    )


def _message(exc: BaseException | None) -> str:
    return str(getattr(exc, "message", None) or exc)


def connect(uri: str, *, token: str = "", timeout: float = TIMEOUT_S) -> Any:
    """A ``pymilvus.MilvusClient`` for ``uri`` (``http://HOST:PORT``, or a Milvus Lite file
    ``*.db``, served on 127.0.0.1 from this process), with retries.

    Raises:
        StoreError: The server cannot be reached.
    """
    pymilvus = require("pymilvus", "pymilvus")
    # call_milvus names the uri and says "cannot reach the Milvus server" when it could not
    return call_milvus(
        f"connect to {uri}", pymilvus.MilvusClient, uri=uri, token=token, timeout=timeout
    )


def on_new_client(
    uri: str, build: Callable[[Any], _T], *, token: str = "", timeout: float = TIMEOUT_S
) -> _T:
    """``build(client)`` over a new :func:`connect` client of ``uri``: the client is closed
    when building fails (a store that refuses the collection must not leak a connection).

    Raises:
        StoreError: The server cannot be reached; and whatever ``build`` raises.
    """
    client = connect(uri, token=token, timeout=timeout)
    try:
        return build(client)
    except BaseException:
        with contextlib.suppress(Exception):
            client.close()
        raise
