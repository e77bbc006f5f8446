"""Fetching images over HTTP(S) without becoming an SSRF proxy.

A service that embeds user-supplied URLs is an SSRF target: ``http://169.254.169.254/`` (cloud
metadata), ``http://localhost:6379/``, ``http://2130706433/`` (127.0.0.1 spelled as a number),
a public host that redirects to a private one, or a DNS name that resolves to a public address
when checked and to a private one when connected (DNS rebinding). :func:`fetch_url` defends:

* ``http`` and ``https`` only; every other scheme is refused, on redirects too;
* the host is resolved once; **every** resolved address must be public (not loopback,
  private, link-local, multicast, reserved, unspecified, shared CGNAT, nor an IPv4-mapped or
  NAT64/6to4 form of those), unless the host is in ``allowed_hosts``;
* the connection goes to the checked address (pinned; the name is not resolved again), with
  the original name in the ``Host`` header and TLS SNI/certificate check;
* redirects are followed by hand, each target checked again, at most ``max_redirects``;
* connect/read timeouts **and** a total deadline covering the whole fetch, name resolution
  included (a slow resolver or a slow drip cannot hang the caller);
* ``Content-Length`` and the streamed body are capped at ``max_bytes``; a body shorter than
  its ``Content-Length`` (the server closed early) or a malformed or conflicting
  ``Content-Length`` fails, never passing half an image; no ``Accept-Encoding`` is sent
  and nothing is decompressed (no gzip bombs);
* spaces and non-ASCII characters in paths, queries and redirect targets are
  percent-encoded as UTF-8; malformed URLs are ``fetch_failed``, never a raw ``ValueError``;
* proxies from the environment are ignored.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from langchain_image_embeddings.errors import ImageLoadError

_REDIRECTS = (301, 302, 303, 307, 308)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchLimits:
    """Limits for :func:`fetch_url` (taken from ``ImageLoadOptions``)."""

    max_bytes: int = 64 * 1024 * 1024
    timeout: float = 10.0
    total_timeout: float = 30.0
    max_redirects: int = 3
    allowed_hosts: tuple[str, ...] = ()
    user_agent: str = "langchain-image-embeddings"


def is_public_address(address: str) -> bool:
    """Whether an IP address may be fetched from (no loopback/private/link-local/... forms)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(str(ip.ipv4_mapped))
        if ip.sixtofour is not None:
            return is_public_address(str(ip.sixtofour))
        if ip.teredo is not None:
            return is_public_address(str(ip.teredo[1]))
        if ip in _NAT64:
            return is_public_address(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip.is_site_local:  # fec0::/10: deprecated, yet routed inside some networks
            return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _host_key(host: str) -> str:
    """A host name or IP as compared with ``allowed_hosts`` (``[::1]`` = ``::1``)."""
    return host.strip().lower().strip("[]")


def _fail(url: str, reason: str, code: str) -> ImageLoadError:
    return ImageLoadError(url, reason, code)


def _getaddrinfo_within(host: str, port: int, timeout: float) -> list[Any]:
    """``socket.getaddrinfo`` that gives up after ``timeout`` s (raising ``TimeoutError``).

    The system resolver cannot be interrupted, so it runs in a daemon thread that is left
    to finish on its own when the deadline passes first.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name=f"resolve {host}", daemon=True).start()
    if not done.wait(max(0.0, timeout)):
        raise TimeoutError(f"name resolution took longer than {timeout:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return list(outcome["infos"])


def _resolve(url: str, host: str, port: int, limits: FetchLimits, deadline: float) -> str:
    """Resolve ``host`` once, within the fetch's deadline, and return the checked address."""
    try:
        infos = _getaddrinfo_within(host, port, deadline - time.monotonic())
    except TimeoutError as exc:
        raise _fail(
            url,
            f"download took longer than {limits.total_timeout} s (resolving {host!r}: {exc})",
            "fetch_failed",
        ) from exc
    except (socket.gaierror, UnicodeError) as exc:
        raise _fail(url, f"cannot resolve host {host!r}: {exc}", "fetch_failed") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise _fail(url, f"host {host!r} has no address", "fetch_failed")
    if _host_key(host) in {_host_key(h) for h in limits.allowed_hosts}:
        return addresses[0]
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked:
        raise _fail(
            url,
            f"host {host!r} resolves to non-public address {blocked[0]}; refusing to fetch "
            "(add the host to ImageLoadOptions.allowed_hosts if you trust it)",
            "blocked_url",
        )
    return addresses[0]


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed IP with SNI and certificate checks against the original host name."""

    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def fetch_url(url: str, limits: FetchLimits | None = None) -> bytes:
    """Download ``url`` under the SSRF and resource limits described in the module docstring.

    Raises:
        ImageLoadError: ``blocked_url``, ``unsupported_scheme``, ``too_large``, ``empty`` or
            ``fetch_failed``, naming the URL (the original one, and the redirect if any).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images._fetch import FetchLimits, fetch_url

            data = fetch_url("https://example.org/cat.jpg", FetchLimits(max_bytes=10_000_000))
    """
    limits = limits or FetchLimits()
    deadline = time.monotonic() + limits.total_timeout
    current = url
    for _ in range(limits.max_redirects + 1):
        status, location, body = _request_once(url, current, limits, deadline)
        if status in _REDIRECTS:
            if not location:
                raise _fail(
                    url, f"HTTP {status} redirect without a Location header", "fetch_failed"
                )
            try:
                current = urllib.parse.urljoin(current, _header_text(location))
            except ValueError as exc:
                raise _fail(url, f"malformed redirect {location!r}: {exc}", "fetch_failed") from exc
            continue
        if status != 200:
            raise _fail(url, f"HTTP {status}", "fetch_failed")
        if not body:
            raise _fail(url, "the server returned no bytes", "empty")
        return body
    raise _fail(url, f"more than {limits.max_redirects} redirects", "fetch_failed")


def _request_once(
    original: str, url: str, limits: FetchLimits, deadline: float
) -> tuple[int, str | None, bytes]:
    where = original if url == original else f"{original} (redirected to {url})"
    try:  # urlsplit and .hostname raise ValueError on "http://[::1/x" or "http://[zz]/"
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname
    except ValueError as exc:
        raise _fail(where, f"malformed URL: {exc}", "fetch_failed") from exc
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https"):
        raise _fail(
            where, f"scheme {scheme!r} is not allowed (http and https only)", "unsupported_scheme"
        )
    if not host:
        raise _fail(where, "the URL has no host", "fetch_failed")
    try:
        port = parsed.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise _fail(where, f"invalid port: {exc}", "fetch_failed") from exc
    address = _resolve(where, host, port, limits, deadline)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _fail(where, f"download took longer than {limits.total_timeout} s", "fetch_failed")
    timeout = min(limits.timeout, remaining)
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(address, host, port, timeout)
    path = _request_target(parsed)
    # A hard total deadline: per-read timeouts alone let a server drip headers or body forever.
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _abort, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(
            "GET",
            path,
            headers={
                "User-Agent": limits.user_agent,
                "Accept": "image/*",
                "Accept-Encoding": "identity",
            },
        )
        response = conn.getresponse()
        if response.status in _REDIRECTS:
            return response.status, response.getheader("Location"), b""
        if response.status != 200:
            return response.status, None, b""
        expected = _content_length(where, response.getheader("Content-Length"))
        if expected is not None and expected > limits.max_bytes:
            raise _fail(
                where,
                f"Content-Length {expected} exceeds the {limits.max_bytes}-byte limit",
                "too_large",
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _fail(
                    where, f"download took longer than {limits.total_timeout} s", "fetch_failed"
                )
            if conn.sock is not None:
                conn.sock.settimeout(min(limits.timeout, remaining))
            chunk = response.read1(64 * 1024)
            if not chunk:
                if time.monotonic() >= deadline:
                    raise _fail(
                        where, f"download took longer than {limits.total_timeout} s", "fetch_failed"
                    )
                break
            size += len(chunk)
            if size > limits.max_bytes:
                raise _fail(
                    where, f"download exceeds the {limits.max_bytes}-byte limit", "too_large"
                )
            chunks.append(chunk)
        if expected is not None and size < expected:
            # http.client's read1 ends quietly when the server closes early: without this
            # check half an image passed for a whole one (and allow_truncated embedded it).
            raise _fail(
                where,
                f"the connection closed after {size} of the {expected} bytes announced",
                "fetch_failed",
            )
        return response.status, None, b"".join(chunks)
    except ImageLoadError:
        raise
    except Exception as exc:
        if time.monotonic() >= deadline:
            raise _fail(
                where, f"download took longer than {limits.total_timeout} s", "fetch_failed"
            ) from exc
        raise _classify(where, exc, limits) from exc
    finally:
        watchdog.cancel()
        conn.close()


# Characters left as they are in a request target: RFC 3986 reserved and unreserved ones and
# "%" (an existing escape); spaces and non-ASCII characters are percent-encoded (UTF-8), as
# browsers do, instead of http.client refusing the URL.
_TARGET_SAFE = "/:@!$&'()*+,;=-._~%?"


def _request_target(parsed: urllib.parse.SplitResult) -> str:
    path = urllib.parse.quote(parsed.path or "/", safe=_TARGET_SAFE)
    query = urllib.parse.quote(parsed.query, safe=_TARGET_SAFE)
    return f"{path}?{query}" if query else path


def _header_text(value: str) -> str:
    """A header value as the server sent it: UTF-8 when its bytes are (http.client: latin-1)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _content_length(where: str, value: str | None) -> int | None:
    """The announced body size; a malformed or conflicting ``Content-Length`` is refused."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():  # "-1", "5, 999" (two headers), "1e9": RFC 9110 says reject
        raise _fail(where, f"invalid Content-Length {value[:40]!r}", "fetch_failed")
    return int(text)


def _abort(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _classify(where: str, exc: Exception, limits: FetchLimits) -> ImageLoadError:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return _fail(where, f"timed out (timeout {limits.timeout} s)", "fetch_failed")
    if isinstance(exc, ssl.SSLError):
        return _fail(where, f"TLS error: {exc}", "fetch_failed")
    return _fail(where, f"cannot fetch: {type(exc).__name__}: {exc}", "fetch_failed")
