"""A search page and a JSON API over any image store (``imgemb serve``; extra ``[serve]``).

:func:`create_app` returns a FastAPI (ASGI) application: mount it in an existing app or run
it with uvicorn. FastAPI and uvicorn are imported only when an app is made.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve import create_app
        from langchain_image_embeddings.vectorstores import open_store

        app = create_app(open_store("faiss:index", create=False))
        # uvicorn.run(app, host="127.0.0.1", port=8000), or parent.mount("/images", app)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_image_embeddings.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from langchain_image_embeddings.serve import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
