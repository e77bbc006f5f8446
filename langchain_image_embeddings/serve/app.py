"""The FastAPI application behind ``imgemb serve``: a search page and its JSON API.

Endpoints (relative to where the app is mounted; schema at ``openapi.json``):

* ``GET /`` - the search page (HTML, JS and CSS all served by the app, no CDN);
* ``GET /api/info`` - the store: model, count, kind, index, limits;
* ``GET /api/search/text?q=...&k=&filter=KEY=VALUE`` - text query (CLIP models);
* ``POST /api/search/image?k=&filter=`` - multipart upload ``file``: image query;
* ``GET /api/similar/{id}?k=&filter=`` - "more like this": a stored record's own vector;
* ``GET /api/records/{id}`` - one record's metadata;
* ``GET /api/thumbnails/{id}?size=`` - a JPEG thumbnail of a stored image;
* ``GET /api/duplicates?threshold=&limit=`` - near-duplicate groups.

Errors are JSON ``{"error": CODE, "message": TEXT}`` with a 4xx status for bad input.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import EncoderError, ImageLoadError
from langchain_image_embeddings.serve.filters import equality_filter
from langchain_image_embeddings.vectorstores.records import record_paths

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from fastapi import FastAPI
    from langchain_core.documents import Document

    from langchain_image_embeddings.duplicates import DuplicateGroup
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ServeSettings", "create_app"]

_FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_TRAVERSAL = re.compile(r"(^|[\\/])\.\.([\\/]|$)")
_MAX_FILTERS = 8
_MAX_ID = 256
# Threads that decode uploads. A 40 KB PNG of zeros decodes to 40 M pixels (~160 MB as RGB);
# decoded on the server's 40 worker threads, each thread's malloc arena kept its peak, and 20
# uploads at once grew the process by 2.7-3.5 GB (two threads: 0.6 GB). The model runs one
# query at a time anyway (``StoreSession.lock``), so two decoding threads lose nothing.
_DECODE_THREADS = 2
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)


@dataclass(frozen=True)
class ServeSettings:
    """Limits of a served store.

    Attributes:
        max_k: Largest ``k`` a search may ask for.
        max_upload_bytes: Largest uploaded query image (the request body may exceed it by
            the multipart overhead, 64 KiB); larger ones get 413 before being read whole.
        max_upload_pixels: Largest uploaded image in pixels (read from its header).
        thumbnail_sizes: The sizes (longest side, px) thumbnails are made at.
        thumbnail_cache: Thumbnails kept in memory (least recently used out).
        image_root: When set, thumbnails are read only from files under this folder.
        title: Page title (default: the store's description).
        allowed_hosts: Host names the app answers for (``images.example.org``,
            ``*.example.org``; ``("*",)``: any). ``None`` (default): requests reaching a
            loopback address must name a loopback host (``localhost``, ``127.0.0.1``,
            ``[::1]``, this machine's name), which stops DNS rebinding; requests on other
            addresses are not checked. A reverse proxy on this machine that forwards its
            own ``Host`` needs its name listed here.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.serve import ServeSettings

            settings = ServeSettings(max_k=50, max_upload_bytes=8 * 1024 * 1024)
    """

    max_k: int = 100
    max_upload_bytes: int = 16 * 1024 * 1024
    max_upload_pixels: int = 40_000_000
    thumbnail_sizes: tuple[int, ...] = (128, 256, 512)
    thumbnail_cache: int = 512
    image_root: str | None = None
    title: str | None = None
    allowed_hosts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Checked at start-up: a max_k of 0 or a missing image_root made every search (or
        # every thumbnail) fail later, one request at a time, with a server that looked fine.
        for name in ("max_k", "max_upload_bytes", "max_upload_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.thumbnail_sizes or min(self.thumbnail_sizes) < 1:
            raise ValueError(f"thumbnail_sizes must be positive sizes, got {self.thumbnail_sizes}")
        if self.thumbnail_cache < 0:
            raise ValueError(f"thumbnail_cache must be >= 0, got {self.thumbnail_cache}")
        if isinstance(self.allowed_hosts, str) or self.allowed_hosts == ():
            # ("a.org") without the comma; () answered no request arriving on the network
            raise ValueError(
                f"allowed_hosts must be a tuple of names or None, got {self.allowed_hosts!r}"
            )
        if self.image_root is not None and not os.path.isdir(self.image_root):
            raise ValueError(f"image_root {self.image_root!r} is not a directory")


class ApiError(Exception):
    """A request the API refuses: rendered as ``{"error": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def parse_filters(values: list[str] | None) -> dict[str, Any] | None:
    """``KEY=VALUE`` strings into a store filter (equality; several are ANDed).

    Integers and decimals are compared as numbers (``width=512``), everything else as text.

    Raises:
        ApiError: A malformed pair, an operator key (``$or``), a ``..`` path segment (also
            percent-encoded) or NUL.
    """
    if not values:
        return None
    if len(values) > _MAX_FILTERS:
        raise ApiError(400, "bad_filter", f"at most {_MAX_FILTERS} filters")
    pairs: list[tuple[str, str]] = []
    for text in values:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not _FILTER_KEY.match(key):
            raise ApiError(
                400,
                "bad_filter",
                f"filter {text[:80]!r}: expected KEY=VALUE with a metadata key of letters, "
                "digits, '_', '.' or '-' (e.g. format=JPEG)",
            )
        if "\x00" in raw or len(raw) > 1000 or _TRAVERSAL.search(urllib.parse.unquote(raw)):
            raise ApiError(
                400,
                "bad_filter",
                f"filter {key}: values are compared with stored metadata, never opened; "
                "'..' path segments, NUL bytes and values over 1000 characters are refused",
            )
        pairs.append((key, raw))
    return equality_filter(pairs)


def _check_id(record_id: str) -> None:
    if not record_id or len(record_id) > _MAX_ID or any(ord(c) < 32 for c in record_id):
        raise ApiError(400, "bad_id", "a record id is 1 to 256 printable characters")


def json_safe(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8, for a JSON response.

    A file name that is not valid UTF-8 (bytes from another locale) reaches Python as lone
    surrogates (``caf\udce9.jpg``), which no JSON encoder writes: such a name is shown with
    its raw bytes escaped (``caf\\xe9.jpg``) instead of failing the whole response. Ids stay
    untouched, so a thumbnail still opens the real file.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raw = value.encode(
                "utf-8", "surrogateescape" if _escaped(value) else "backslashreplace"
            )
            return raw.decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _escaped(text: str) -> bool:
    """Whether every surrogate in ``text`` is an escaped byte (U+DC80-U+DCFF)."""
    return all(0xDC80 <= ord(c) <= 0xDCFF for c in text if 0xD800 <= ord(c) <= 0xDFFF)


def _hit(rank: int, doc: Document, score: float) -> dict[str, Any]:
    meta = dict(doc.metadata)
    hit = {
        "rank": rank,
        "id": doc.id,
        "score": round(float(score), 6),
        "source": str(meta.get("source", doc.page_content)),
        "sources": record_paths(meta) or [doc.page_content],
        "metadata": meta,
    }
    return {key: value if key == "id" else json_safe(value) for key, value in hit.items()}


def _describe(store: ImageVectorStore, info: dict[str, Any] | None) -> dict[str, Any]:
    """Kind and index of a store, from ``store_info`` when given, else from the object."""
    kind = (info or {}).get("kind")
    name = type(store).__name__
    if kind is None:
        kind = {
            "FAISSImageStore": "faiss",
            "ChromaImageStore": "chroma",
            "MilvusImageStore": "milvus",
        }.get(name, name)
    built = getattr(store, "index_info", None)  # FAISS: the index actually searched
    if isinstance(built, dict) and built.get("kind") == "flat":
        index_kind = "flat (exact, cosine)"
    elif isinstance(built, dict):
        recall = built.get("recall")
        measured = f", recall@10 {float(recall):.3f}" if recall is not None else ""
        index_kind = f"{built.get('factory', built.get('kind'))} (approximate{measured}, cosine)"
    elif "chroma" in str(kind) or "milvus" in str(kind):
        index_kind = "HNSW (approximate, cosine)"
    else:
        index_kind = str((info or {}).get("metric") or "unknown")
    return {"kind": str(kind), "index": index_kind, "store": (info or {}).get("store", name)}


class _BodyTooLarge(Exception):
    pass


class _BodyLimit:
    """ASGI middleware: a request body over ``max_body`` bytes gets 413 before it is read."""

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
        from langchain_image_embeddings.serve.asgi import send_json_error

        await send_json_error(
            send,
            413,
            "too_large",
            f"the request body exceeds {self.max_body} bytes; upload a smaller image",
            close=True,
        )


def _require_fastapi() -> None:
    require("fastapi", "fastapi")
    require("multipart", "python-multipart")  # FastAPI's upload parsing


def create_app(
    store: ImageVectorStore,
    settings: ServeSettings | None = None,
    *,
    info: dict[str, Any] | None = None,
) -> FastAPI:
    """A FastAPI app serving a search page and JSON API over ``store``.

    The app only reads the store: uploads are query images, never written to it, and
    thumbnails are made from the stored sources of records addressed by id (local files
    only; nothing is fetched). Mount it in an existing ASGI app or run it with uvicorn.

    Args:
        store: Any image store (FAISS, embedded Chroma, Chroma server).
        settings: Limits (``k``, upload bytes and pixels, thumbnail sizes and cache).
        info: What :func:`~langchain_image_embeddings.vectorstores.store_info` says of the
            store (shown in the page's summary).

    Returns:
        The application (``openapi.json`` describes its API).

    Raises:
        MissingDependencyError: FastAPI or python-multipart is not installed.

    Example:
        .. code-block:: python

            import uvicorn

            from langchain_image_embeddings.serve import create_app
            from langchain_image_embeddings.vectorstores import open_store

            app = create_app(open_store("faiss:index", create=False))
            uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    _require_fastapi()
    from langchain_image_embeddings.serve.routes import build_app

    return build_app(store, settings or ServeSettings(), info)


def static_dir() -> str:
    """The folder of the page's HTML, JS and CSS."""
    return str(resources.files("langchain_image_embeddings.serve") / "static")


class StoreSession:
    """The store behind an app, with the lock that serialises model and store calls."""

    def __init__(self, store: ImageVectorStore, settings: ServeSettings) -> None:
        self.store = store
        self.settings = settings
        self.lock = threading.Lock()
        self._decoder = ThreadPoolExecutor(_DECODE_THREADS, thread_name_prefix="imgemb-upload")
        self._duplicates: dict[tuple[float, int], list[DuplicateGroup]] = {}

    def document(self, record_id: str) -> Document:
        _check_id(record_id)
        with self.lock:
            docs = self.store.get_by_ids([record_id])
        if not docs:
            raise ApiError(404, "unknown_id", f"no record with id {record_id[:80]!r} in this store")
        return docs[0]

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.settings.max_k:
            raise ApiError(422, "bad_k", f"k must be between 1 and {self.settings.max_k}, got {k}")

    def text(self, query: str, k: int, filter: dict[str, Any] | None) -> list[dict[str, Any]]:
        self.check_k(k)
        if not query.strip():
            raise ApiError(422, "bad_query", "the text query is empty")
        try:
            with self.lock:
                hits = self.store.similarity_search_with_score(query, k, filter)
        except EncoderError as exc:
            raise ApiError(400, "no_text_tower", str(exc)) from exc
        except ValueError as exc:
            raise ApiError(400, "bad_filter", str(exc)) from exc
        return [_hit(n, d, s) for n, (d, s) in enumerate(hits, start=1)]

    def image(self, data: bytes, k: int, filter: dict[str, Any] | None) -> list[dict[str, Any]]:
        import dataclasses

        from langchain_image_embeddings.images._load import load_image

        self.check_k(k)
        limits = self.settings
        if len(data) > limits.max_upload_bytes:
            raise ApiError(
                413,
                "too_large",
                f"the upload has {len(data)} bytes, over the {limits.max_upload_bytes}-byte limit",
            )
        options = dataclasses.replace(
            self.store.image_embeddings.load_options,
            allow_remote=False,
            max_bytes=limits.max_upload_bytes,
            max_pixels=limits.max_upload_pixels,
        )

        def search() -> list[tuple[Document, float]]:  # on a decoding thread
            try:
                image = load_image(data, options)
            except ImageLoadError as exc:
                status = {"too_large": 413, "decompression_bomb": 413, "unsupported_format": 415}
                raise ApiError(
                    status.get(exc.code, 400), exc.code, f"the upload: {exc.reason}"
                ) from exc
            try:
                with self.lock:
                    return self.store.similarity_search_by_image_with_relevance_score(
                        image, k, filter
                    )
            except ValueError as exc:
                raise ApiError(400, "bad_filter", str(exc)) from exc

        hits = self._decoder.submit(search).result()
        return [_hit(n, d, s) for n, (d, s) in enumerate(hits, start=1)]

    def similar(
        self, record_id: str, k: int, filter: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        self.check_k(k)
        doc = self.document(record_id)
        try:
            with self.lock:
                vector = self.store._vectors([record_id])[0]
                hits = self.store.similarity_search_with_score_by_vector(
                    [float(x) for x in vector], k + 1, filter
                )
        except ValueError as exc:
            raise ApiError(400, "bad_filter", str(exc)) from exc
        others = [(d, s) for d, s in hits if d.id != doc.id][:k]
        return [_hit(n, d, s) for n, (d, s) in enumerate(others, start=1)]

    def duplicates(self, threshold: float) -> list[DuplicateGroup]:
        from langchain_image_embeddings.duplicates import find_duplicates

        with self.lock:
            key = (round(threshold, 6), len(self.store))
            if key not in self._duplicates:
                if len(self._duplicates) > 16:
                    self._duplicates.clear()
                self._duplicates[key] = find_duplicates(self.store, threshold)
            return self._duplicates[key]
