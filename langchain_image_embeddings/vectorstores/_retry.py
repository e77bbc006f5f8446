"""One retry policy for the server-backed stores (Chroma, Milvus).

Connection failures (server down, refused, reset, timed out) are retried a bounded number
of times with exponential backoff, then raised as :class:`StoreError`; any other backend
error is a :class:`StoreError` at once. Each backend says which of its exceptions are
connection failures.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from langchain_image_embeddings.errors import StoreError

_T = TypeVar("_T")


def call_with_retries(
    backend: str,
    what: str,
    fn: Callable[..., _T],
    *args: Any,
    is_connection_error: Callable[[BaseException], bool],
    retries: int,
    backoff_s: float,
    quiet: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    describe: Callable[[BaseException | None], str] = str,
    **kwargs: Any,
) -> _T:
    """Call ``fn(*args, **kwargs)``: retry connection failures, raise ``StoreError`` otherwise.

    Args:
        backend: Name in messages (``"Chroma"``, ``"Milvus"``).
        what: The operation, in messages (``"upsert"``).
        is_connection_error: Whether an exception is worth another try.
        retries: Tries in all (at least one).
        backoff_s: Wait before the second try; doubled before each further one.
        quiet: Context around each call (e.g. silencing a client's own traceback logs).
        describe: How an exception reads in the ``StoreError`` message.

    Example:
        .. code-block:: python

            call_with_retries("Chroma", "count", collection.count,
                              is_connection_error=lambda e: isinstance(e, ConnectionError),
                              retries=3, backoff_s=0.2)
    """
    last: BaseException | None = None
    tries = max(1, retries)
    for attempt in range(tries):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            with quiet():
                return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            if not is_connection_error(exc):
                raise StoreError(f"{backend} {what} failed: {describe(exc)}") from exc
            last = exc
    raise StoreError(
        f"{backend} {what} failed: cannot reach the {backend} server after {tries} tries: "
        f"{describe(last)}"
    ) from last
