"""The ``Host`` header check of the served app: no DNS rebinding against a loopback server.

A server on 127.0.0.1 is out of reach of other machines, but not of web pages the user opens:
a page on ``http://attacker.example:8000/`` can make its name resolve to 127.0.0.1 (DNS
rebinding); the browser then treats our API as *the same origin as the attacker's page* and
lets its script read every result, record and thumbnail. Such requests carry the attacker's
name in ``Host``, so a loopback server answers only requests whose ``Host`` is a loopback
name (``localhost``, ``*.localhost``, 127.0.0.0/8, ``[::1]``) or this machine's host name.

Requests arriving on other addresses (``--host 0.0.0.0`` reached over the network, a mount in
another application, a test client) are not checked unless ``allowed_hosts`` lists names.
Pure Python, no FastAPI.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.hosts import host_allowed

        host_allowed("localhost:8000", ("127.0.0.1", 8000), None)         # True
        host_allowed("attacker.example:8000", ("127.0.0.1", 8000), None)  # False
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from functools import lru_cache

from langchain_image_embeddings.serve.asgi import ASGIApp, Receive, Scope, Send, send_json_error

__all__ = ["HostCheck", "host_allowed", "host_name"]


def host_name(header: str) -> str:
    """The name in a ``Host`` header value: lower case, without port, brackets or final dot."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:8000
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_loopback_ip(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def _own_names() -> frozenset[str]:
    """This machine's host names (Debian maps them to 127.0.1.1, a loopback address)."""
    names = {socket.gethostname().lower()}
    with contextlib.suppress(OSError):  # a broken resolver
        names.add(socket.getfqdn().lower())
    return frozenset(n.rstrip(".") for n in names if n)


def _is_loopback_name(name: str) -> bool:
    return (
        name == "localhost"
        or name.endswith(".localhost")  # RFC 6761: browsers resolve these to loopback
        or _is_loopback_ip(name)
        or name in _own_names()
    )


def _matches(name: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        wanted = pattern.strip().lower().rstrip(".")
        if wanted == "*" or name == wanted:
            return True
        if wanted.startswith("*.") and name.endswith(wanted[1:]):
            return True
    return False


def host_allowed(
    header: str | None, server: tuple[str, int | None] | None, allowed: Sequence[str] | None
) -> bool:
    """Whether a request with this ``Host`` header may be answered.

    Args:
        header: The request's ``Host`` header (``None`` when it has none: HTTP/1.0).
        server: The local address the request arrived on (the ASGI ``server``).
        allowed: ``ServeSettings.allowed_hosts``: ``None`` checks only loopback servers;
            names (``images.example.org``, ``*.example.org``; ``*`` for any) are checked on
            every request, loopback names staying allowed on a loopback server.
    """
    on_loopback = server is not None and _is_loopback_ip(str(server[0]))
    if allowed is None and not on_loopback:
        return True
    if header is None:
        return True  # rebinding needs a browser, and a browser always sends Host
    name = host_name(header)
    if allowed is not None and _matches(name, allowed):
        return True
    return on_loopback and _is_loopback_name(name)


class HostCheck:
    """ASGI middleware: HTTP requests whose ``Host`` fails :func:`host_allowed` get 400.

    Example:
        .. code-block:: python

            from fastapi import FastAPI

            from langchain_image_embeddings.serve.hosts import HostCheck

            app = FastAPI()
            app.add_middleware(HostCheck, allowed=None)
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed: Sequence[str] | None,
    ) -> None:
        self.app = app
        self.allowed = None if allowed is None else tuple(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next(
                (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None
            )
            if not host_allowed(header, scope.get("server"), self.allowed):
                await self._refuse(send, header or "")
                return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, header: str) -> None:
        await send_json_error(
            send,
            400,
            "bad_host",
            f"this server does not answer for host {header[:100]!r}: a server on a loopback "
            "address answers only localhost names (DNS rebinding guard); list the names it is "
            "reached by in ServeSettings(allowed_hosts=...)",
        )
