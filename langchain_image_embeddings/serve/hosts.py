"""The ``Host`` header check of the served app: no DNS rebinding against a loopback server.

A server on 127.0.0.1 is out of reach of other machines, but not of web pages the user opens:
a page on ``http://attacker.example:8000/`` can make its name resolve to 127.0.0.1 (DNS
rebinding); the browser then treats our API as *the same origin as the attacker's page* and
lets its script read every result, record and thumbnail. Such requests carry the attacker's
name in ``Host``, so a loopback server answers only requests whose ``Host`` is a loopback
name (``localhost``, ``*.localhost``, 127.0.0.0/8, ``[::1]``) or this machine's host name.

Requests arriving on other addresses (``--host 0.0.0.0`` reached over the network, a mount in
another application, a test client) are not checked unless ``allowed_hosts`` lists names.

On every address, the ``Host`` value must be ``host[:port]`` as RFC 7230/3986 spell it: a
name (letters, digits, ``-``, ``_``, dots), an IPv4 literal or a bracketed IPv6 literal, then
an optional port of digits, nothing else (no ``user@``, no path, no zone id); and a request
may carry one ``Host`` header only (RFC 7230, section 5.4). Anything else gets 400 too.
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
import re
import socket
from collections.abc import Sequence
from functools import lru_cache

from langchain_image_embeddings.serve.asgi import ASGIApp, Receive, Scope, Send, send_json_error

__all__ = ["HostCheck", "host_allowed", "host_name"]


#: ``host[:port]``: a bracketed IPv6 literal, or a name (an IPv4 literal is one), then a port.
_HOST = re.compile(
    r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?))"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_MAX_NAME = 254  # 253 characters and a final dot


def host_name(header: str) -> str | None:
    """The name in a ``Host`` header value (lower case, without port, brackets or final
    dot), or ``None`` when the value is not ``host[:port]``.

    Example:
        >>> host_name("LocalHost:8000"), host_name("[::1]:8000")
        ('localhost', '::1')
        >>> host_name("127.0.0.1:80@evil.example") is None
        True
    """
    value = header.strip(" \t")
    if not value.isascii():
        return None
    match = _HOST.fullmatch(value.lower())
    if match is None or int(match["port"] or 0) > 65535:
        return None
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return None
        return str(match["ipv6"])
    name = str(match["name"])
    return name.rstrip(".") if len(name) <= _MAX_NAME else None


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

    A value that is not ``host[:port]`` (see :func:`host_name`) is refused on every address,
    whatever ``allowed`` lists.
    """
    if header is None:
        return True  # rebinding needs a browser, and a browser always sends Host
    name = host_name(header)
    if name is None:
        return False  # not host[:port]: refused on every address (RFC 7230, section 5.4)
    on_loopback = server is not None and _is_loopback_ip(str(server[0]))
    if allowed is None and not on_loopback:
        return True
    if allowed is not None and _matches(name, allowed):
        return True
    return on_loopback and _is_loopback_name(name)


class HostCheck:
    """ASGI middleware: HTTP requests whose ``Host`` fails :func:`host_allowed`, or that
    carry more than one ``Host`` header, get 400 ``bad_host``.

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
            hosts = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"]
            if len(hosts) > 1:
                await self._refuse(send, "this request carries more than one Host header")
                return
            header = hosts[0] if hosts else None
            if not host_allowed(header, scope.get("server"), self.allowed):
                await self._refuse(send, self._reason(header or ""))
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _reason(header: str) -> str:
        if host_name(header) is None:
            return (
                f"the Host header {header[:100]!r} is not host[:port] (a name, an IPv4 "
                "address or a bracketed IPv6 address, then an optional numeric port)"
            )
        return (
            f"this server does not answer for host {header[:100]!r}: a server on a loopback "
            "address answers only localhost names (DNS rebinding guard); list the names it is "
            "reached by in ServeSettings(allowed_hosts=...)"
        )

    async def _refuse(self, send: Send, reason: str) -> None:
        await send_json_error(send, 400, "bad_host", reason)
