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

from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.serve.settings import ServeSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

__all__ = ["create_app"]


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
