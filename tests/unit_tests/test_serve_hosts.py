"""The ``Host`` check of ``imgemb serve`` (issue 24, item 3): a ``Host`` value is parsed
strictly (RFC 7230/3986 ``host[:port]``: a name, an IPv4 literal or a bracketed IPv6 literal,
then an optional numeric port, nothing else), and a request carrying two ``Host`` headers is
refused. An outside probe got 200 from a loopback server for ``127.0.0.1:80@evil.example``,
``[::1].evil.example``, ``[::1]evil.example`` and for two ``Host`` headers, loopback first."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from langchain_image_embeddings.serve.asgi import Message, Receive, Scope, Send
from langchain_image_embeddings.serve.hosts import HostCheck, host_allowed, host_name
from tests.serve_helpers import live_server

LOOPBACK = ("127.0.0.1", 8000)
ELSEWHERE = ("192.0.2.7", 8000)

#: Values an outside probe (or the RFC grammar) says are not ``host[:port]``.
MALFORMED = [
    "127.0.0.1:80@evil.example",
    "[::1].evil.example",
    "[::1]evil.example",
    "[::1]:80@evil.example",
    "localhost@evil.example",
    "evil.example@localhost",
    "localhost:80:80",
    "localhost:",
    "localhost:8o",
    "localhost:99999",
    "localhost:+80",
    "localhost/evil.example",
    "localhost\\evil.example",
    "localhost evil.example",
    "localhost?x",
    "localhost#x",
    ":8000",
    "",
    "[::1",
    "::1",
    "::1:8000",
    "[::1]]",
    "[127.0.0.1]",
    "[v1.localhost]",
    "[::1%25lo]",
    "[::1%evil.example]",
    "local..host",
    ".localhost",
    "user:pass@localhost",
]

#: Values every loopback server must keep answering.
GOOD = [
    "localhost",
    "localhost:8000",
    "LOCALHOST:8000",
    "localhost.",
    "127.0.0.1",
    "127.0.0.1:8000",
    "127.0.0.2:8000",
    "[::1]",
    "[::1]:8000",
    "[0:0:0:0:0:0:0:1]:8000",
    "foo.localhost",
    "foo.localhost:8000",
]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_host_values_are_refused(value: str) -> None:
    assert not host_allowed(value, LOOPBACK, None)
    # ... whatever the names allowed, on any address
    assert not host_allowed(value, LOOPBACK, ("*",))
    assert not host_allowed(value, ELSEWHERE, ("*",))
    assert not host_allowed(value, ELSEWHERE, ("evil.example", "localhost"))
    assert not host_allowed(value, ELSEWHERE, None)  # RFC 7230 5.4: 400 on any address
    assert host_name(value) is None


@pytest.mark.parametrize("value", GOOD)
def test_loopback_host_values_stay_accepted(value: str) -> None:
    assert host_name(value) is not None
    assert host_allowed(value, LOOPBACK, None)
    assert host_allowed(value, LOOPBACK, ("images.example.org",))


def test_the_machines_own_name_and_allowed_names_stay_accepted() -> None:
    for name in {socket.gethostname(), socket.getfqdn()}:
        assert host_allowed(name, LOOPBACK, None), name
        assert host_allowed(f"{name}:8000", LOOPBACK, None), name
    listed = ("images.example.org", "*.example.net")
    for value in ("images.example.org", "Images.Example.Org:443", "a.example.net:8000"):
        assert host_allowed(value, ELSEWHERE, listed), value
        assert host_allowed(value, LOOPBACK, listed), value
    for value in ("other.example", "example.net", "images.example.org.evil.example"):
        assert not host_allowed(value, ELSEWHERE, listed), value
    # Not checked on other addresses when no names are listed (a mount, --host 0.0.0.0) ...
    assert host_allowed("images.example.org", ELSEWHERE, None)
    assert host_allowed(None, LOOPBACK, None)  # HTTP/1.0: no Host at all
    # ... foreign names still refused on loopback
    assert not host_allowed("attacker.example:8000", LOOPBACK, None)


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(headers: list[tuple[bytes, bytes]], server: tuple[str, int] = LOOPBACK) -> int:
    """Status of one request through ``HostCheck`` (no names listed)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "server": server}
    asyncio.run(HostCheck(_ok, None)(scope, receive, send))
    if sent[0]["status"] != 200:
        assert json.loads(sent[1]["body"])["error"] == "bad_host"
    return int(sent[0]["status"])


@pytest.mark.parametrize(
    "hosts",
    [
        [b"localhost", b"evil.example"],
        [b"127.0.0.1:8000", b"127.0.0.1:8000"],
        [b"evil.example", b"localhost"],
    ],
)
def test_two_host_headers_are_refused(hosts: list[bytes]) -> None:
    headers = [(b"host", h) for h in hosts] + [(b"accept", b"*/*")]
    assert _call(headers) == 400
    assert _call(headers, ELSEWHERE) == 400  # RFC 7230 5.4: on any address
    assert _call([(b"host", hosts[0])]) == (400 if b"evil" in hosts[0] else 200)


def test_a_live_loopback_server_refuses_malformed_and_doubled_host() -> None:
    """Over a real socket (uvicorn), as the probe sent them."""
    with live_server(HostCheck(_ok, None)) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])

        def status(host_lines: str) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(f"GET / HTTP/1.1\r\n{host_lines}\r\n".encode())
                return sock.recv(65536).split(b"\r\n", 1)[0].split()[1]

        for bad in ("127.0.0.1:80@evil.example", "[::1].evil.example", "[::1]evil.example"):
            assert status(f"Host: {bad}\r\n") == b"400", bad
        assert status(f"Host: 127.0.0.1:{port}\r\nHost: evil.example\r\n") == b"400"
        assert status(f"Host: localhost:{port}\r\nHost: localhost:{port}\r\n") == b"400"
        for good in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "a.localhost"):
            assert status(f"Host: {good}\r\n") == b"200", good
