"""The limits of a served store: one frozen value, checked when it is made.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.settings import ServeSettings

        settings = ServeSettings(max_k=50, max_upload_bytes=8 * 1024 * 1024)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ServeSettings"]


@dataclass(frozen=True)
class ServeSettings:
    """Limits of a served store.

    Attributes:
        max_k: Largest ``k`` a search may ask for.
        max_upload_bytes: Largest uploaded query image (the request body may exceed it by
            the multipart overhead, 64 KiB); larger ones get 413 before being read whole.
        max_upload_pixels: Largest uploaded image in pixels (read from its header).
        max_upload_memory: Bytes all uploads being decoded at once may use (estimated from
            each header before decoding); more uploads wait, and one that alone needs more
            waits until no other is decoded and then runs alone.
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
        allow_delete: Whether the page may remove records from the index (``imgemb serve
            --allow-delete``); files on disk are never deleted by the server.
        max_batch: Most image queries embedded in one model call (dynamic micro-batching;
            ``1``: one call per query).
        batch_wait: Seconds the first query of a batch waits for others (5 ms).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.serve import ServeSettings

            settings = ServeSettings(max_k=50, max_upload_bytes=8 * 1024 * 1024)
    """

    max_k: int = 100
    max_upload_bytes: int = 16 * 1024 * 1024
    max_upload_pixels: int = 40_000_000
    max_upload_memory: int = 512 * 1024 * 1024
    thumbnail_sizes: tuple[int, ...] = (128, 256, 512)
    thumbnail_cache: int = 512
    image_root: str | None = None
    title: str | None = None
    allowed_hosts: tuple[str, ...] | None = None
    allow_delete: bool = False
    max_batch: int = 16
    batch_wait: float = 0.005

    def __post_init__(self) -> None:
        # Checked at start-up: a max_k of 0 or a missing image_root made every search (or
        # every thumbnail) fail later, one request at a time, with a server that looked fine.
        if not 0 <= self.batch_wait <= 1:
            raise ValueError(f"batch_wait must be 0 to 1 seconds, got {self.batch_wait}")
        for name in (
            "max_k",
            "max_upload_bytes",
            "max_upload_pixels",
            "max_upload_memory",
            "max_batch",
        ):
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
