"""A JSON error response sent by plain ASGI middleware (before FastAPI sees the request).

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.asgi import send_json_error

        await send_json_error(send, 413, "too_large", "the request body is too large")
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["Send", "send_json_error"]

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def send_json_error(
    send: Send, status: int, error: str, message: str, *, close: bool = False
) -> None:
    """Send ``{"error": error, "message": message}`` with ``status``, as the API's own
    errors look; ``close`` asks the client to drop the connection (an unread body)."""
    body = json.dumps({"error": error, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
