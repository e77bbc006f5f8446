"""Thumbnails of stored images, made server-side from the record's own local source.

A thumbnail is addressed by record id only: the file read is the ``source`` the store keeps
for that record, never a path or URL from a request. ``http(s)`` and other remote sources
are never fetched (:class:`ThumbnailError` with code ``remote_source``); local files go
through the package's safe loader with the store's limits (bytes, pixels, formats), remote
fetching forced off and, when given, confinement to a root folder. A PDF page or figure
record's source is its address (``report.pdf#page=3``, ``report.pdf#page=3&figure=2``): the
same loader renders the page at the smallest scale covering the thumbnail (or extracts the
figure), under the same limits. Sizes come from a fixed list and results are kept in a
bounded LRU cache.
"""

from __future__ import annotations

import dataclasses
import io
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import uri_scheme

if TYPE_CHECKING:
    from langchain_image_embeddings.images import ImageLoadOptions

__all__ = ["ThumbnailCache", "ThumbnailError", "is_local_source"]


class ThumbnailError(Exception):
    """A stored image whose thumbnail cannot be made (``code``: why, ``status``: HTTP)."""

    def __init__(self, code: str, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def is_local_source(source: str) -> bool:
    """Whether a stored source is read without the network (a path, ``file:`` or ``data:``)."""
    return uri_scheme(source) in ("", "file", "data")


class ThumbnailCache:
    """JPEG thumbnails of stored images, at most ``max_items`` kept (least recently used out).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.images import ImageLoadOptions
            from langchain_image_embeddings.serve.thumbnails import ThumbnailCache

            cache = ThumbnailCache(ImageLoadOptions(), sizes=(128, 256), max_items=256)
            jpeg = cache.get("record-id", "photos/cat.jpg", 256)
    """

    def __init__(
        self,
        options: ImageLoadOptions,
        *,
        sizes: tuple[int, ...] = (128, 256, 512),
        max_items: int = 512,
        root: str | None = None,
        quality: int = 85,
        workers: int = 2,
    ) -> None:
        # Thumbnails are made on ``workers`` threads, not on the server's 40: a 36 M pixel PNG
        # decodes to ~150 MB and each thread's malloc arena keeps its peak (20 misses at once
        # grew the server by 2.4 GB).
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="imgemb-thumbnail")
        self.options = dataclasses.replace(
            options, allow_remote=False, root=root if root is not None else options.root
        )
        self.sizes = tuple(sorted(sizes))
        self.max_items = max_items
        self.quality = quality
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, record_id: str, source: str, size: int) -> bytes:
        """The JPEG thumbnail (longest side ``size``) of a record's stored source.

        Raises:
            ThumbnailError: A size not in the list, a remote source, an unreadable file.
        """
        if size not in self.sizes:
            raise ThumbnailError(
                "bad_size", f"size must be one of {', '.join(map(str, self.sizes))}", 422
            )
        key = (record_id, size)
        with self._lock:
            cached = self._items.get(key)
            if cached is not None:
                self._items.move_to_end(key)
                return cached
        data = self.pool.submit(self._make, source, size).result()
        with self._lock:
            self._items[key] = data
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return data

    def _make(self, source: str, size: int) -> bytes:
        from langchain_image_embeddings.images import load_image

        if not is_local_source(source):
            raise ThumbnailError(
                "remote_source",
                "this record's image is remote; the server never fetches URLs, so it has no "
                "thumbnail",
            )
        try:
            image = load_image(source, self.options, draft_size=(size, size))
        except ImageLoadError as exc:
            raise ThumbnailError(
                "unreadable_source", f"the stored image cannot be read: {exc.reason} [{exc.code}]"
            ) from exc
        image.thumbnail((size, size))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=self.quality)
        return out.getvalue()
