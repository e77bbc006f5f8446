"""An app that answers at once while the model loads: ``imgemb serve`` listens first, then
opens the store and warms the model on a background thread.

Until the real app is ready, the page and its files are served, ``/api/info`` answers
``{"state": "loading"}`` (the page says so and polls), and every other API request gets
503 ``loading``; a load that fails answers ``{"state": "failed", "message": ...}``. The
``Host`` check and the security headers apply from the first request. Pure ASGI, no
FastAPI; the real app is whatever ``load`` returns.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve import ServeSettings, create_app
        from langchain_image_embeddings.serve.loading import LoadingApp
        from langchain_image_embeddings.vectorstores import open_store

        settings = ServeSettings()
        app = LoadingApp(lambda: create_app(open_store("faiss:index", create=False), settings), settings)
        # uvicorn.run(app, ...): answers at once, searches once the model is loaded
"""

from __future__ import annotations

import html
import json
import mimetypes
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_image_embeddings.serve.asgi import ASGIApp, Receive, Scope, Send, send_json_error
from langchain_image_embeddings.serve.hosts import HostCheck

if TYPE_CHECKING:
    from langchain_image_embeddings.serve.settings import ServeSettings

__all__ = ["LoadingApp"]

_STATIC = Path(__file__).parent / "static"
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        b"script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
        b"frame-ancestors 'self'",
    ),
]


class LoadingApp:
    """ASGI app: serves a small "loading" answer until ``load()`` (run on a thread) returns
    the real app, then hands every request to it.

    Args:
        load: Builds the real app (opens the store, loads the model); run once, on a thread.
        settings: The served limits (the ``Host`` check uses ``allowed_hosts``).
        title: The page title while loading.

    Attributes:
        ready: Set once the real app answers (or the load failed: see :attr:`error`).
        error: Why the load failed, for a person.
        exception: The exception the load raised (``None`` when it did not).
        seconds: How long the load took.

    Example:
        .. code-block:: python

            app = LoadingApp(build_real_app, ServeSettings())
            app.ready.wait(60)
    """

    def __init__(
        self, load: Callable[[], ASGIApp], settings: ServeSettings, title: str = "imgemb"
    ) -> None:
        self._load = load
        self._app: ASGIApp | None = None
        self.error: str | None = None
        self.exception: Exception | None = None
        self.seconds: float | None = None
        self.ready = threading.Event()
        self._title = title
        self._waiting = HostCheck(self._loading, allowed=settings.allowed_hosts)
        threading.Thread(target=self._run, name="imgemb-load", daemon=True).start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self._app = self._load()
        except Exception as exc:  # shown on the page and by /api/info; the CLI prints it too
            self.error = f"{type(exc).__name__}: {exc}"
            self.exception = exc
        self.seconds = time.monotonic() - started
        self.ready.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            await self._waiting(scope, receive, send)

    async def _loading(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "/"))
        base = str(scope.get("root_path", "")).rstrip("/")
        if base and path.startswith(base):
            path = path[len(base) :] or "/"
        if path == "/":
            text = (_STATIC / "index.html").read_text(encoding="utf-8")
            text = text.replace("{{BASE}}", html.escape(base + "/", quote=True))
            await self._send(
                send,
                200,
                "text/html; charset=utf-8",
                text.replace("{{TITLE}}", html.escape(self._title)).encode(),
            )
        elif path.startswith("/static/") and "/" not in path[len("/static/") :]:
            file = _STATIC / path[len("/static/") :]
            if file.is_file():
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                await self._send(send, 200, kind, file.read_bytes())
            else:
                await send_json_error(send, 404, "not_found", "Not Found")
        elif path == "/api/info":
            state = (
                {"state": "failed", "message": self.error} if self.error else {"state": "loading"}
            )
            await self._send(send, 200, "application/json", json.dumps(state).encode())
        elif self.error:
            await send_json_error(
                send, 503, "load_failed", f"the server could not load: {self.error}"
            )
        else:
            await send_json_error(
                send, 503, "loading", "The model is still loading; try again in a few seconds."
            )

    @staticmethod
    async def _send(send: Send, status: int, kind: str, body: bytes) -> None:
        headers = [
            (b"content-type", kind.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *_HEADERS,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
