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

from typing import TYPE_CHECKING

from langchain_image_embeddings._exports import lazy_exports

if TYPE_CHECKING:
    from langchain_image_embeddings.serve.app import create_app
    from langchain_image_embeddings.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]

# Lazy: FastAPI is imported only when an app is made.
__getattr__, __dir__ = lazy_exports(__name__, {"ServeSettings": ".settings", "create_app": ".app"})
