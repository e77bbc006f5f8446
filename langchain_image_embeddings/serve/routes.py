"""The FastAPI app's assembly and routes (imports FastAPI: reached only through
:func:`~langchain_image_embeddings.serve.create_app`, which checks that it is installed).

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.routes import build_app
        from langchain_image_embeddings.serve.settings import ServeSettings
        from langchain_image_embeddings.vectorstores import open_store

        app = build_app(open_store("faiss:index", create=False), ServeSettings(), None)
"""

from __future__ import annotations

import html
import urllib.parse
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from langchain_image_embeddings._version import __version__
from langchain_image_embeddings.duplicates import DEFAULT_MAX_GROUP_SIZE, DEFAULT_THRESHOLD
from langchain_image_embeddings.serve.asgi import BodyLimit
from langchain_image_embeddings.serve.hosts import HostCheck
from langchain_image_embeddings.serve.session import (
    FILTER_PATTERN,
    MAX_FILTERS,
    MAX_ID,
    ApiError,
    StoreSession,
    describe_store,
    friendly_size,
    json_safe,
    search_hit,
)
from langchain_image_embeddings.serve.thumbnails import (
    ThumbnailCache,
    ThumbnailError,
    is_local_source,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from langchain_image_embeddings.serve.settings import ServeSettings
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

__all__ = [
    "DEFAULT_K",
    "DEFAULT_THUMBNAIL_SIZE",
    "BrowseResults",
    "DuplicateGroupModel",
    "DuplicateMemberModel",
    "Duplicates",
    "ErrorBody",
    "Hit",
    "MetadataKey",
    "MetadataKeys",
    "Record",
    "RemoveRequest",
    "Removed",
    "SearchResults",
    "StoreSummary",
    "build_app",
    "static_dir",
]

_MULTIPART_OVERHEAD = 64 * 1024
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)


class ErrorBody(BaseModel):
    """A refused request."""

    error: str = Field(description="machine-readable code, e.g. unknown_id, too_large, bad_k")
    message: str = Field(description="what was wrong, for a person")


class Hit(BaseModel):
    """One search result."""

    rank: int
    id: str | None
    score: float = Field(description="relevance in [0, 1] (1 = same direction)")
    source: str = Field(description="the image's path or URI")
    sources: list[str] = Field(description="every path with these exact bytes")
    metadata: dict[str, Any]


class SearchResults(BaseModel):
    """Results of a search, best first."""

    query: dict[str, Any]
    k: int
    count: int
    results: list[Hit]


class BrowseResults(BaseModel):
    """A page of the store without a query (``recent`` or ``random`` order)."""

    query: dict[str, Any]
    k: int
    offset: int
    total: int = Field(description="records that match the filters")
    count: int
    results: list[Hit]


class MetadataKey(BaseModel):
    """One metadata key of the store."""

    key: str
    count: int = Field(description="records that hold it")
    distinct: int = Field(description="different values")
    kind: str = Field(description="number or text")
    samples: list[Any] = Field(description="frequent values (none for paths and hashes)")


class MetadataKeys(BaseModel):
    """The metadata keys a filter may name."""

    count: int
    keys: list[MetadataKey]


class RemoveRequest(BaseModel):
    """Records to remove from the index (their files stay on disk)."""

    ids: list[str] = Field(min_length=1, max_length=10_000)


class Removed(BaseModel):
    """What was removed from the index."""

    removed: list[str]
    count: int = Field(description="records left in the store")


class StoreSummary(BaseModel):
    """What the served store holds."""

    model: str
    supports_text: bool
    count: int
    dim: int | None
    kind: str
    index: str
    store: str
    title: str
    version: str
    max_k: int
    max_upload_bytes: int
    max_upload_pixels: int
    thumbnail_sizes: list[int]
    allow_delete: bool = Field(description="whether the page may remove records from the index")
    state: str = Field(
        "ready", description="ready (while imgemb serve loads the model, /api/info says loading)"
    )


class Record(BaseModel):
    """One stored record."""

    id: str
    source: str
    sources: list[str]
    metadata: dict[str, Any]
    thumbnail: str = Field(description="URL of its thumbnail, relative to the app")


class DuplicateMemberModel(BaseModel):
    """One image of a near-duplicate group."""

    id: str
    source: str
    sources: list[str]
    score: float = Field(description="best relevance to another member")
    metadata: dict[str, Any]


class DuplicateGroupModel(BaseModel):
    """Records whose images are near-duplicates of each other."""

    size: int = Field(description="records in the group")
    keeper: str = Field(description="suggested record to keep: most pixels, then largest file")
    images: int = Field(description="paths in the group (identical files count each)")
    min_score: float
    max_score: float
    members: list[DuplicateMemberModel]


class Duplicates(BaseModel):
    """Near-duplicate groups, largest first."""

    threshold: float
    method: str
    max_group_size: int
    count: int = Field(description="records in the store")
    total_groups: int
    offset: int
    groups: list[DuplicateGroupModel]


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422)
}

# The schema states what ``parse_filters`` checks (a refused filter is 400 bad_filter).
FilterParam = Annotated[
    list[str] | None,
    Query(
        description="metadata equality KEY=VALUE (repeatable, ANDed), e.g. format=JPEG",
        json_schema_extra={
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": FILTER_PATTERN},
                    "maxItems": MAX_FILTERS,
                },
                {"type": "null"},
            ]
        },
    ),
]
# ``:path`` routes: ids are the caller's (``add_images(..., ids=paths)``) and may hold '/'
# (sent percent-encoded); an id is only ever looked up in the store, never opened.
# The schema states what ``session`` checks (1 to 256 characters, no control characters):
# a generated id outside it gets 400 bad_id, not a schema-valid request refused.
IdParam = Annotated[
    str,
    PathParam(
        description="a record id (from a search result), percent-encoded",
        json_schema_extra={"minLength": 1, "maxLength": MAX_ID, "pattern": r"^[^\x00-\x1f]*$"},
    ),
]
# Only image types a browser shows inline; anything else is sent as bytes to download.
_ORIGINAL_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
}
#: ``k`` when a search does not say (at most the app's ``max_k``).
DEFAULT_K = 12
#: Thumbnail size when a request does not say (the nearest of the app's sizes).
DEFAULT_THUMBNAIL_SIZE = 256


def static_dir() -> str:
    """The folder of the page's HTML, JS and CSS."""
    return str(resources.files("langchain_image_embeddings.serve") / "static")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def build_app(
    store: ImageVectorStore, settings: ServeSettings, info: dict[str, Any] | None
) -> FastAPI:
    """The FastAPI app of :func:`~langchain_image_embeddings.serve.create_app`."""
    session = StoreSession(store, settings)
    image = store.image_embeddings
    thumbnails = ThumbnailCache(
        image.load_options,
        sizes=settings.thumbnail_sizes,
        max_items=settings.thumbnail_cache,
        root=settings.image_root,
    )
    described = describe_store(store, info)
    title = settings.title or f"{described['store']} · {image.model_id}"
    app = FastAPI(
        title="imgemb image search",
        version=__version__,
        description="Search an image store by text (CLIP models), by uploaded image or by a "
        "stored record; thumbnails and near-duplicate groups. Errors are JSON "
        '`{"error": CODE, "message": TEXT}`.',
        docs_url=None,  # Swagger UI loads from a CDN: the schema is at /openapi.json
        redoc_url=None,
        responses=_ERRORS,
    )
    app.state.session = session  # for tests and benchmarks (its batcher's batch sizes)
    app.add_middleware(BodyLimit, max_body=settings.max_upload_bytes + _MULTIPART_OVERHEAD)
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # outermost: checked first

    _install_error_handlers(app, settings)
    _add_page(app, title)
    _add_info_route(app, session, settings, thumbnails, described, title)
    _add_search_routes(app, session, settings)
    _add_browse_route(app, session, settings)
    _add_record_routes(app, session, thumbnails)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return app


def _install_error_handlers(app: FastAPI, settings: ServeSettings) -> None:
    """Security headers on every response; every error as ``{"error", "message"}`` JSON."""

    @app.middleware("http")
    async def _headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", _CSP)
        return response

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:
            message = (
                f"This file is larger than the {friendly_size(settings.max_upload_bytes)} this "
                "server accepts. Save it smaller (e.g. as a JPEG) and try again."
            )
            return _error(413, "too_large", message)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return _error(exc.status_code, code, str(exc.detail))


def _add_page(app: FastAPI, title: str) -> None:
    """The search page (static HTML with the mount point and title filled in)."""
    page = (Path(static_dir()) / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        base = str(request.scope.get("root_path", "")).rstrip("/") + "/"
        text = page.replace("{{BASE}}", html.escape(base, quote=True))
        return HTMLResponse(text.replace("{{TITLE}}", html.escape(title)))


def _add_info_route(
    app: FastAPI,
    session: StoreSession,
    settings: ServeSettings,
    thumbnails: ThumbnailCache,
    described: dict[str, Any],
    title: str,
) -> None:
    """``/api/info``: what the page needs to know about the store and the limits."""
    store = session.store
    image = store.image_embeddings

    @app.get("/api/info", response_model=StoreSummary)
    def api_info() -> dict[str, Any]:
        """The store: model, whether it takes text queries, size, kind, index and limits."""
        with session.lock:
            count = len(store)
            dim = store.dim
        return {
            "model": image.model_id,
            "supports_text": bool(image.supports_text),
            "count": count,
            "dim": dim,
            **described,
            "title": title,
            "version": __version__,
            "max_k": settings.max_k,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_upload_pixels": settings.max_upload_pixels,
            "thumbnail_sizes": list(thumbnails.sizes),
            "allow_delete": settings.allow_delete,
            "state": "ready",
        }

    @app.get("/api/metadata", response_model=MetadataKeys)
    def api_metadata() -> dict[str, Any]:
        """The metadata keys of the store with frequent values (for filters)."""
        catalog = session.catalog()
        return json_safe({"count": catalog.size, "keys": catalog.keys()})  # type: ignore[no-any-return]


def _add_search_routes(app: FastAPI, session: StoreSession, settings: ServeSettings) -> None:
    """Text, uploaded-image and "more like this" search."""
    # A fixed default of 12 over ``max_k=10`` refused every request that left k out (422).
    default_k = min(DEFAULT_K, settings.max_k)

    @app.get("/api/search/text", response_model=SearchResults)
    def search_text(
        q: Annotated[str, Query(min_length=1, max_length=1000, description="text query")],
        k: int = Query(default_k, ge=1, le=settings.max_k, description="number of results"),
        filter: FilterParam = None,
    ) -> dict[str, Any]:
        """Text-to-image search (CLIP models; image-only models answer 400 no_text_tower)."""
        results = session.text(q, k, session.filters(filter))
        return {
            "query": {"text": q, "filter": filter or []},
            "k": k,
            "count": len(results),
            "results": results,
        }

    @app.post("/api/search/image", response_model=SearchResults)
    def search_image(
        file: Annotated[UploadFile, File(description="the query image (never stored)")],
        k: int = Query(default_k, ge=1, le=settings.max_k, description="number of results"),
        filter: FilterParam = None,
    ) -> dict[str, Any]:
        """Search by an uploaded image, read by the safe loader under byte and pixel caps."""
        name = file.filename or ""
        if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
            raise ApiError(
                400, "bad_filename", "the upload's file name must be a plain name, not a path"
            )
        session.check_k(k)
        filters = session.filters(filter)
        data = file.file.read(settings.max_upload_bytes + 1)
        results = session.image(data, k, filters)
        return {
            "query": {"upload": name, "bytes": len(data), "filter": filter or []},
            "k": k,
            "count": len(results),
            "results": results,
        }

    @app.get("/api/similar/{record_id:path}", response_model=SearchResults)
    def similar(
        record_id: IdParam,
        k: int = Query(default_k, ge=1, le=settings.max_k, description="number of results"),
        filter: FilterParam = None,
    ) -> dict[str, Any]:
        """ "More like this": the records nearest to a stored record (itself left out)."""
        results = session.similar(record_id, k, session.filters(filter))
        return {
            "query": {"id": record_id, "filter": filter or []},
            "k": k,
            "count": len(results),
            "results": results,
        }


def _add_browse_route(app: FastAPI, session: StoreSession, settings: ServeSettings) -> None:
    """The store without a query: newest first or shuffled (an image-only store can be
    explored without an outside image)."""
    default_k = min(DEFAULT_K, settings.max_k)

    @app.get("/api/browse", response_model=BrowseResults)
    def browse(
        order: Annotated[
            str, Query(pattern="^(random|recent)$", description="random or recent")
        ] = "random",
        seed: Annotated[int, Query(ge=0, le=2**31, description="the shuffle (random)")] = 0,
        k: int = Query(default_k, ge=1, le=settings.max_k, description="records per page"),
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        filter: FilterParam = None,
    ) -> dict[str, Any]:
        """A page of records: ``recent`` (newest file first) or ``random`` (by ``seed``)."""
        total, results = session.browse(order, seed, k, offset, filter)
        return {
            "query": {"browse": order, "seed": seed, "filter": filter or []},
            "k": k,
            "offset": offset,
            "total": total,
            "count": len(results),
            "results": results,
        }


def _add_record_routes(app: FastAPI, session: StoreSession, thumbnails: ThumbnailCache) -> None:
    """One record, its thumbnail, and the near-duplicate groups."""
    store = session.store
    # A fixed default of 256 over ``thumbnail_sizes=(128,)`` refused every thumbnail that left
    # the size out (422 bad_size).
    default_size = min(thumbnails.sizes, key=lambda s: (abs(s - DEFAULT_THUMBNAIL_SIZE), s))

    @app.get("/api/records/{record_id:path}", response_model=Record)
    def record(record_id: IdParam) -> dict[str, Any]:
        """One stored record and the URL of its thumbnail."""
        doc = session.document(record_id)
        hit = {
            k: v
            for k, v in search_hit(0, doc, 0.0).items()
            if k in ("source", "sources", "metadata")
        }
        # Quoted: an id may hold '/', '?', '#' or '%' (ids are the caller's, e.g. paths).
        thumb = "api/thumbnails/" + urllib.parse.quote(record_id, safe="")
        return {"id": record_id, **hit, "thumbnail": thumb}

    @app.get(
        "/api/thumbnails/{record_id:path}",
        responses={200: {"content": {"image/jpeg": {}}, "description": "a JPEG thumbnail"}},
        response_class=Response,
    )
    def thumbnail(
        record_id: IdParam,
        size: int = Query(
            default_size,
            description="longest side in pixels (from thumbnail_sizes)",
            json_schema_extra={"enum": list(thumbnails.sizes)},
        ),
    ) -> Response:
        """A JPEG thumbnail of a stored image, made from the record's own local source."""
        doc = session.document(record_id)
        source = str(doc.metadata.get("source", doc.page_content))
        try:
            data = thumbnails.get(record_id, source, size)
        except ThumbnailError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from exc
        return Response(
            data,
            media_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=86400"},
        )

    @app.get(
        "/api/originals/{record_id:path}",
        responses={200: {"content": {"image/*": {}}, "description": "the stored image file"}},
        response_class=Response,
    )
    def original(record_id: IdParam) -> Response:
        """The stored image file of a record, as it is on disk (local sources only, read by
        the safe loader within the store's limits and ``image_root``; never fetched)."""
        from langchain_image_embeddings.errors import ImageLoadError
        from langchain_image_embeddings.images import read_image_source

        doc = session.document(record_id)
        source = str(doc.metadata.get("source", doc.page_content))
        if not is_local_source(source) or source.startswith("data:"):
            raise ApiError(404, "remote_source", "this record's image is not a local file")
        try:
            image = thumbnails.pool.submit(read_image_source, source, thumbnails.options).result()
        except ImageLoadError as exc:
            raise ApiError(
                404, "unreadable_source", f"the stored image cannot be read: {exc.reason}"
            ) from exc
        kind = str(image.metadata.get("format") or "").lower()
        media = _ORIGINAL_TYPES.get(kind, "application/octet-stream")
        return Response(
            image.data,
            media_type=media,
            headers={"Cache-Control": "private, max-age=3600", "Content-Disposition": "inline"},
        )

    @app.get("/api/duplicates", response_model=Duplicates)
    def duplicates(
        threshold: Annotated[
            float,
            Query(gt=0.5, le=1.0, description="relevance at or above which images are linked"),
        ] = DEFAULT_THRESHOLD,
        limit: Annotated[int, Query(ge=1, le=1000, description="groups returned")] = 100,
        offset: Annotated[int, Query(ge=0, le=10**9, description="groups skipped")] = 0,
        method: Annotated[
            str,
            Query(
                pattern="^(centroid|complete|single)$",
                description="centroid: near the group's mean; complete: every pair; "
                "single: any chain",
            ),
        ] = "centroid",
        max_group_size: Annotated[
            int, Query(ge=2, le=1000, description="most members of a group")
        ] = DEFAULT_MAX_GROUP_SIZE,
    ) -> dict[str, Any]:
        """Groups of near-duplicate images (largest first), a page at a time."""
        groups = session.duplicates(threshold, method, max_group_size)
        return {
            "threshold": threshold,
            "method": method,
            "max_group_size": max_group_size,
            "count": len(store),
            "total_groups": len(groups),
            "offset": offset,
            "groups": [json_safe(g.to_dict()) for g in groups[offset : offset + limit]],
        }

    @app.post("/api/records/remove", response_model=Removed, responses={403: {"model": ErrorBody}})
    def remove(request: RemoveRequest) -> dict[str, Any]:
        """Remove records from the index (servers started with ``--allow-delete`` only;
        files on disk are never deleted)."""
        removed = session.remove(request.ids)
        return {"removed": removed, "count": len(store)}
