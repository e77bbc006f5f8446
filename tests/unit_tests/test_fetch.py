"""Safe URL fetching against hostile HTTP servers on loopback.

The "public" image server listens on 127.0.0.2 and is trusted through ``allowed_hosts``; the
protected endpoint (think cloud metadata) listens on 127.0.0.1 and must never be hit.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from langchain_image_embeddings import ImageLoadError, ImageLoadOptions, load_image
from langchain_image_embeddings.images._fetch import FetchLimits, fetch_url, is_public_address

PUBLIC_HOST = "127.0.0.2"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (0, 255, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


class _Server:
    def __init__(self, host: str, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def protected() -> Iterator[tuple[_Server, list[str]]]:
    hits: list[str] = []

    class Secret(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"secret credentials")

        def log_message(self, *args: object) -> None:
            pass

    server = _Server("127.0.0.1", Secret)
    yield server, hits
    server.close()


@pytest.fixture
def hostile(protected: tuple[_Server, list[str]]) -> Iterator[_Server]:
    secret, _ = protected
    png = _png()

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path
            if path == "/ok.png":
                self._send(200, png, {"Content-Type": "image/png"})
            elif path == "/to-secret":
                self._send(302, b"", {"Location": secret.url("/latest/meta-data/")})
            elif path == "/to-decimal-loopback":
                self._send(302, b"", {"Location": f"http://2130706433:{secret.port}/x"})
            elif path == "/to-file":
                self._send(302, b"", {"Location": "file:///etc/passwd"})
            elif path.startswith("/loop"):
                n = int(path[5:] or 0)
                self._send(302, b"", {"Location": f"/loop{n + 1}"})
            elif path == "/relative-then-ok":
                self._send(301, b"", {"Location": "/ok.png"})
            elif path == "/huge-length":
                self._send(200, b"x" * 10, {"Content-Length": str(10**12)}, length=False)
            elif path == "/endless":
                self.send_response(200)
                self.end_headers()
                try:
                    for _ in range(10_000):
                        self.wfile.write(b"\0" * 65536)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            elif path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                try:
                    for _ in range(1000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            elif path == "/gzip-bomb":
                bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
                self._send(200, bomb, {"Content-Encoding": "gzip", "Content-Type": "image/png"})
            elif path == "/404":
                self._send(404, b"nope", {})
            elif path == "/short":  # announces the whole PNG, sends half, closes
                self.send_response(200)
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png[: len(png) // 2])
                self.close_connection = True
            elif path == "/two-lengths":
                self._send(200, png, {"Content-Length": "10"}, length=True)
            elif path == "/caf%C3%A9%20photo.png?size=%C3%A9":
                self._send(200, png, {"Content-Type": "image/png"})
            elif path == "/to-utf8":  # UTF-8 bytes in Location (http.client reads latin-1)
                target = "/café photo.png?size=é".encode().decode("latin-1")
                self._send(302, b"", {"Location": target})
            else:
                self._send(500, b"", {})

        def _send(
            self, code: int, body: bytes, headers: dict[str, str], length: bool = True
        ) -> None:
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key, value)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(PUBLIC_HOST, Hostile)
    yield server
    server.close()


def _opts(**kwargs: object) -> ImageLoadOptions:
    return ImageLoadOptions(allow_remote=True, allowed_hosts=(PUBLIC_HOST,), **kwargs)  # type: ignore[arg-type]


def _error(url: str, options: ImageLoadOptions) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(url, options)
    return info.value


def test_fetches_an_image_from_an_allowed_host(hostile: _Server) -> None:
    image = load_image(hostile.url("/ok.png"), _opts())
    assert image.size == (16, 12) and image.getpixel((3, 3)) == (0, 255, 0)


def test_relative_redirect_is_followed(hostile: _Server) -> None:
    assert load_image(hostile.url("/relative-then-ok"), _opts()).size == (16, 12)


def test_loopback_is_refused_without_allow_list(protected: tuple[_Server, list[str]]) -> None:
    secret, hits = protected
    err = _error(secret.url("/latest/meta-data/"), ImageLoadOptions(allow_remote=True))
    assert err.code == "blocked_url"
    assert "resolves to non-public address 127.0.0.1" in err.reason
    assert hits == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "127.1",
        "0177.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "localhost",
    ],
)
def test_every_spelling_of_loopback_is_refused(
    host: str, protected: tuple[_Server, list[str]]
) -> None:
    secret, hits = protected
    err = _error(f"http://{host}:{secret.port}/x", ImageLoadOptions(allow_remote=True))
    assert err.code in (
        "blocked_url",
        "fetch_failed",
    )  # fetch_failed: this resolver rejects the spelling
    assert hits == []


def test_redirect_to_protected_endpoint_is_refused(
    hostile: _Server, protected: tuple[_Server, list[str]]
) -> None:
    _, hits = protected
    for path in ("/to-secret", "/to-decimal-loopback"):
        err = _error(hostile.url(path), _opts())
        assert err.code == "blocked_url"
        assert "redirected to" in err.source
    assert hits == []


def test_redirect_to_file_scheme_is_refused(hostile: _Server) -> None:
    err = _error(hostile.url("/to-file"), _opts())
    assert err.code == "unsupported_scheme"


def test_redirect_limit(hostile: _Server) -> None:
    err = _error(hostile.url("/loop0"), _opts(max_redirects=2))
    assert err.code == "fetch_failed" and "more than 2 redirects" in err.reason


def test_content_length_over_cap(hostile: _Server) -> None:
    err = _error(hostile.url("/huge-length"), _opts())
    assert err.code == "too_large" and "Content-Length" in err.reason


def test_endless_body_is_cut_at_the_cap(hostile: _Server) -> None:
    started = time.monotonic()
    err = _error(hostile.url("/endless"), _opts(max_bytes=1_000_000))
    assert err.code == "too_large"
    assert time.monotonic() - started < 10


def test_slow_drip_hits_the_total_deadline(hostile: _Server) -> None:
    started = time.monotonic()
    err = _error(hostile.url("/drip"), _opts(timeout=5.0, total_timeout=1.0))
    elapsed = time.monotonic() - started
    assert err.code == "fetch_failed" and "longer than 1.0 s" in err.reason
    assert elapsed < 4.0


def test_gzip_bomb_is_never_decompressed(hostile: _Server) -> None:
    # 50 MiB of zeros compressed to ~50 KB: we never decode Content-Encoding, so the bytes
    # stay small and are rejected as not-an-image.
    err = _error(hostile.url("/gzip-bomb"), _opts(max_bytes=5_000_000))
    assert err.code == "unsupported_format"


def test_http_error_status(hostile: _Server) -> None:
    err = _error(hostile.url("/404"), _opts())
    assert err.code == "fetch_failed" and err.reason == "HTTP 404"


def test_connection_is_pinned_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, hostile: _Server, protected: tuple[_Server, list[str]]
) -> None:
    # DNS rebinding: the first resolution says "public", any later one says "loopback".
    # The host is resolved once and the connection goes to the checked address.
    real = socket.getaddrinfo
    calls: list[str] = []

    def rebinding(host: str, port: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if host == "images.example":
            calls.append(host)
            target = PUBLIC_HOST if len(calls) == 1 else "127.0.0.1"
            return real(target, port, *args, **kwargs)  # type: ignore[arg-type]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    _, hits = protected
    limits = FetchLimits(allowed_hosts=("images.example",))
    data = fetch_url(f"http://images.example:{hostile.port}/ok.png", limits)
    assert data.startswith(b"\x89PNG") and calls == ["images.example"] and hits == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("2002:7f00:0001::", False),
        ("fec0::1", False),  # site-local: passed as public before
        ("::ffff:0:7f00:1", False),
        ("64:ff9b:1::a9fe:a9fe", False),
    ],
)
def test_address_classification(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_a_body_cut_short_is_a_failed_download_not_half_an_image(hostile: _Server) -> None:
    # http.client's read1 ends quietly when the server closes early: half a PNG passed for a
    # whole one (an "unsupported_format" error, or a half-grey image with allow_truncated).
    for options in (_opts(), _opts(allow_truncated=True)):
        err = _error(hostile.url("/short"), options)
        assert err.code == "fetch_failed" and "closed after" in err.reason, err


def test_conflicting_content_lengths_are_refused(hostile: _Server) -> None:
    with pytest.raises(ImageLoadError) as info:
        fetch_url(hostile.url("/two-lengths"), FetchLimits(allowed_hosts=(PUBLIC_HOST,)))
    assert info.value.code == "fetch_failed" and "Content-Length" in info.value.reason


def test_spaces_and_non_ascii_in_urls_and_redirects_are_percent_encoded(hostile: _Server) -> None:
    # Raised UnicodeEncodeError / InvalidURL ("fetch_failed") before; browsers encode them.
    assert load_image(hostile.url("/café photo.png?size=é"), _opts()).size == (16, 12)
    assert load_image(hostile.url("/to-utf8"), _opts()).size == (16, 12)


@pytest.mark.parametrize("url", ["http://[::1/x", "http://[zz]/x.png"])
def test_a_malformed_url_is_an_image_load_error(url: str) -> None:
    # Raised a raw ValueError from urllib.parse, out of load_image (and of a whole batch).
    err = _error(url, ImageLoadOptions(allow_remote=True))
    assert err.code == "fetch_failed" and "malformed URL" in err.reason


def test_allowed_hosts_accept_bracketed_ipv6_and_any_case(
    protected: tuple[_Server, list[str]],
) -> None:
    secret, hits = protected
    limits = FetchLimits(allowed_hosts=("LOCALHOST", "[::1]"))
    assert fetch_url(f"http://localhost:{secret.port}/x", limits) == b"secret credentials"
    assert hits == ["/x"]
    with pytest.raises(ImageLoadError) as info:  # allowed: nothing listens on ::1 here
        fetch_url(f"http://[::1]:{secret.port}/x", limits)
    assert info.value.code == "fetch_failed", info.value
