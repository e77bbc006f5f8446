"""Plain ASGI pieces that act before FastAPI sees a request: the JSON error response they
send, and the request-body limit.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.asgi import send_json_error

        await send_json_error(send, 413, "too_large", "the request body is too large")
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "BodyLimit", "Receive", "Scope", "Send", "send_json_error"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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


class BodyLimit:
    """ASGI middleware: a request body over ``max_body`` bytes gets 413 before it is read.

    A declared ``Content-Length`` over the limit is refused at once with the API's JSON
    error; a body that grows past it while streaming stops with FastAPI's 413.

    Example:
        .. code-block:: python

            from fastapi import FastAPI

            from langchain_image_embeddings.serve.asgi import BodyLimit

            app = FastAPI()
            app.add_middleware(BodyLimit, max_body=16 * 1024 * 1024)
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    from fastapi import HTTPException

                    raise HTTPException(413, "upload too large")  # FastAPI re-raises these
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited, tracked)

    async def _refuse(self, send: Send) -> None:
        await send_json_error(
            send,
            413,
            "too_large",
            "This file is larger than this server accepts. Save it smaller (e.g. as a JPEG) "
            "and try again.",
            close=True,
        )
