"""The store behind a served app: the lock around model and store calls, the checks of what a
request asks for, and the JSON shape of a result. Pure Python, no FastAPI.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.session import StoreSession
        from langchain_image_embeddings.serve.settings import ServeSettings
        from langchain_image_embeddings.vectorstores import open_store

        session = StoreSession(open_store("faiss:index", create=False), ServeSettings())
        hits = session.text("a cat on a sofa", k=5, filter=None)  # [{"rank": 1, "id": ...}]
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.errors import EncoderError, ImageLoadError
from langchain_image_embeddings.images import open_image_header
from langchain_image_embeddings.pipeline._steps import (
    REDUCING_GAP,
    decode_target_size,
    finish,
    shrink,
)
from langchain_image_embeddings.serve.batching import MicroBatcher
from langchain_image_embeddings.serve.catalog import MetadataCatalog
from langchain_image_embeddings.serve.filters import equality_filter, filter_value
from langchain_image_embeddings.vectorstores._records import record_paths

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.documents import Document
    from PIL import Image

    from langchain_image_embeddings.duplicates import DuplicateGroup
    from langchain_image_embeddings.serve.settings import ServeSettings
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

__all__ = [
    "FILTER_PATTERN",
    "MAX_FILTERS",
    "MAX_ID",
    "ApiError",
    "DecodeBudget",
    "StoreSession",
    "describe_store",
    "json_safe",
    "decode_cost",
    "friendly_size",
    "parse_filter_pairs",
    "parse_filters",
    "search_hit",
]

_FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_TRAVERSAL = re.compile(r"(^|[\\/])\.\.([\\/]|$)")
#: Most ``KEY=VALUE`` filters one request may give.
MAX_FILTERS = 8
#: One filter as the OpenAPI schema states it (what :func:`parse_filters` accepts, less its
#: refusal of ``..`` path segments, which a pattern without look-arounds cannot say).
FILTER_PATTERN = r"^\s*[A-Za-z_][A-Za-z0-9_.\-]{0,63}\s*=[^\x00]{0,1000}$"
#: Longest record id the API looks up.
MAX_ID = 256
# Threads that decode uploads. A 100 KB PNG of zeros decodes to 40 M pixels (~160 MB as RGB);
# decoded on the server's 40 worker threads, each thread's malloc arena kept its peak, and 20
# uploads at once grew the process by 2.7-3.5 GB (two threads: 0.9 GB, 1.8 GB for RGBA). The
# decoded images are reduced to the model's size at once and batched for the model
# (``StoreSession.batcher``); what decodes hold at once is bounded by :class:`DecodeBudget`.
_DECODE_THREADS = 2

#: Peak bytes per pixel of a decode, by the mode in the header, with the early reduction of
#: ``load_image(..., draft_size=...)`` (measured, 40 M pixel PNGs, Pillow 13). Pillow keeps
#: RGB in 4 bytes a pixel; RGBA and LA are reduced through a premultiplied copy (two full
#: copies at once); palette and 16-bit images are not reduced before their conversion to RGB
#: (palette with transparency: RGBA, a copy, the canvas, the result; 16-bit: float64 arrays).
_PEAK_BYTES_PER_PIXEL: dict[str, int] = {
    "1": 5,
    "L": 1,
    "P": 9,
    "RGB": 4,
    "YCbCr": 4,
    "CMYK": 4,
    "I": 4,
    "F": 4,
    "LA": 8,
    "RGBA": 8,
}
#: Modes not in the table (PA, La, I;16 and kin): the worst measured (16-bit grey: 33).
_UNKNOWN_MODE_BYTES_PER_PIXEL = 34
#: Any mode decoded without ``draft_size`` (``fast_decode=False``): RGBA measured 19.
_FULL_SIZE_BYTES_PER_PIXEL = 20
#: Palette images with a transparent colour are composited at full size (measured: 17).
_TRANSPARENT_PALETTE_BYTES_PER_PIXEL = 18


def decode_cost(image: Image.Image, draft_size: tuple[int, int] | None) -> int:
    """Peak bytes decoding a lazily opened image will take (nothing is decoded here).

    Args:
        image: The image as :func:`~langchain_image_embeddings.images.open_image_header`
            returns it (size, mode, format known).
        draft_size: The ``draft_size`` the decode will be given; a JPEG is then decoded at
            the DCT scale that covers it (asked of Pillow's ``draft``, which only changes the
            lazily opened image's size), whichever way EXIF turns it.
    """
    width, height = image.size
    if draft_size is not None and image.format == "JPEG":
        side = max(draft_size)  # square: covers the target in either orientation
        # a draft Pillow refuses leaves the size as is: the decode is then full size
        with contextlib.suppress(Exception):
            image.draft(image.mode if image.mode in ("L", "CMYK") else "RGB", (side, side))
        width, height = image.size
    if image.mode == "P" and "transparency" in image.info:
        per_pixel = _TRANSPARENT_PALETTE_BYTES_PER_PIXEL
    else:
        per_pixel = _PEAK_BYTES_PER_PIXEL.get(image.mode, _UNKNOWN_MODE_BYTES_PER_PIXEL)
    if draft_size is None:  # no early reduction: the conversion to RGB adds full-size copies
        per_pixel = max(per_pixel, _FULL_SIZE_BYTES_PER_PIXEL)
    return width * height * per_pixel


class DecodeBudget:
    """Bytes that all upload decodes in flight may hold together (a counting condition).

    ``acquire(n)`` waits until ``n`` more bytes fit. An amount over the whole budget (a
    16-bit 40 M pixel PNG is ~1.4 GB to decode) waits until nothing else is held and then
    runs alone: uploads the pixel cap accepts are never refused for memory, and at most one
    of them is ever decoded beside nothing else. :attr:`peak` is the most ever held at once
    (for tests).

    Example:
        .. code-block:: python

            budget = DecodeBudget(512 * 1024 * 1024)
            budget.acquire(160_000_000)
            try:
                ...  # decode
            finally:
                budget.release(160_000_000)
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, amount: int) -> None:
        """Wait until ``amount`` bytes fit (or, over the whole budget, until none are held),
        then hold them."""
        with self._cond:
            self._cond.wait_for(lambda: self.held == 0 or self.held + amount <= self.total)
            self.held += amount
            self.peak = max(self.peak, self.held)

    def release(self, amount: int) -> None:
        with self._cond:
            self.held -= amount
            self._cond.notify_all()


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
    return equality_filter(parse_filter_pairs(values))


def parse_filter_pairs(values: list[str] | None) -> list[tuple[str, str]]:
    """``KEY=VALUE`` strings as checked ``(key, value)`` pairs (see :func:`parse_filters`).

    Raises:
        ApiError: As :func:`parse_filters`.
    """
    if not values:
        return []
    if len(values) > MAX_FILTERS:
        raise ApiError(400, "bad_filter", f"at most {MAX_FILTERS} filters")
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
    return pairs


def _check_id(record_id: str) -> None:
    if not record_id or len(record_id) > MAX_ID or any(ord(c) < 32 for c in record_id):
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


def search_hit(
    rank: int, doc: Document, score: float, matched_text: str | None = None
) -> dict[str, Any]:
    meta = dict(doc.metadata)
    if matched_text is not None:  # the caption that matched, beside the image it describes
        meta["matched_text"] = matched_text
    hit = {
        "rank": rank,
        "id": doc.id,
        "score": round(float(score), 6),
        "source": str(meta.get("source", doc.page_content)),
        "sources": record_paths(meta) or [doc.page_content],
        "metadata": meta,
    }
    return {key: value if key == "id" else json_safe(value) for key, value in hit.items()}


def describe_store(store: ImageVectorStore, info: dict[str, Any] | None) -> dict[str, Any]:
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


def friendly_size(n: int) -> str:
    """Bytes as a person reads them: ``16 MB``, ``640 KB``, ``512 bytes`` (powers of 1024)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return (
                f"{value:.0f} {unit}"
                if value >= 10 or value.is_integer()
                else f"{value:.1f} {unit}"
            )
    return f"{n} bytes"


def _megapixels(n: float) -> str:
    return f"{n / 1e6:.0f}" if n >= 10e6 else f"{n / 1e6:.1f}"


_GEOMETRY = re.compile(r"(\d+)x(\d+)")


def _upload_error(exc: ImageLoadError, settings: ServeSettings) -> ApiError:
    """The loader's refusal as a message a person can act on (no option names, no raw byte
    counts); the code stays the loader's."""
    status = {"too_large": 413, "decompression_bomb": 413, "unsupported_format": 415}
    limit = settings.max_upload_pixels
    if exc.code == "decompression_bomb":
        size = _GEOMETRY.search(exc.reason)
        has = (
            f"This image is {size[1]} x {size[2]} pixels ({_megapixels(int(size[1]) * int(size[2]))}"
            " million); "
            if size
            else "This image has too many pixels; "
        )
        message = (
            f"{has}this server accepts images up to {_megapixels(limit)} million pixels. "
            "Resize it (4000 pixels on the longest side is plenty) and try again."
        )
    elif exc.code == "too_large":
        message = (
            f"This file is larger than the {friendly_size(settings.max_upload_bytes)} this "
            "server accepts. Save it smaller (e.g. as a JPEG) and try again."
        )
    elif exc.code in ("unsupported_format", "truncated", "corrupt", "empty"):
        message = (
            f"This file could not be read as an image ({exc.reason}). Try a JPEG, PNG or WebP file."
        )
    else:
        message = f"This image could not be used ({exc.reason}). Try another file."
    return ApiError(status.get(exc.code, 400), exc.code, message)


class StoreSession:
    """The store behind an app: the lock that serialises store calls (and text queries),
    and the micro-batcher that embeds concurrent image queries in one model call."""

    def __init__(self, store: ImageVectorStore, settings: ServeSettings) -> None:
        self.store = store
        self.settings = settings
        self.lock = threading.Lock()
        self._decoder = ThreadPoolExecutor(_DECODE_THREADS, thread_name_prefix="imgemb-upload")
        self.batcher: MicroBatcher[Image.Image, list[float]] = MicroBatcher(
            self._embed_batch, max_batch=settings.max_batch, max_wait=settings.batch_wait
        )
        self.upload_budget = DecodeBudget(settings.max_upload_memory)
        self._duplicates: dict[tuple[float, str, int, int], list[DuplicateGroup]] = {}
        self._catalog: MetadataCatalog | None = None
        # bumped by every delete: the catalog and duplicate groups are rebuilt after one
        self._generation = 0

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
                # a client's text is text: never a path for the server to open (query rule)
                hits = self._image_hits(
                    lambda n: self.store.similarity_search_with_score(
                        query, n, filter, query_mode="text"
                    ),
                    k,
                )
        except EncoderError as exc:
            raise ApiError(400, "no_text_tower", str(exc)) from exc
        except ValueError as exc:
            raise ApiError(400, "bad_filter", str(exc)) from exc
        return [search_hit(n, *hit) for n, hit in enumerate(hits, start=1)]

    def image(self, data: bytes, k: int, filter: dict[str, Any] | None) -> list[dict[str, Any]]:
        self.check_k(k)
        limits = self.settings
        if len(data) > limits.max_upload_bytes:
            raise ApiError(
                413,
                "too_large",
                f"This file ({friendly_size(len(data))}) is larger than the "
                f"{friendly_size(limits.max_upload_bytes)} this server accepts. Save it "
                "smaller (e.g. as a JPEG) and try again.",
            )

        # decoded on a decoding thread; embedded with the queries that arrive meanwhile (one
        # model call for the batch); searched under the lock (the store is not thread-safe)
        image = self._decoder.submit(self._decode_upload, data).result()
        vector = self.batcher.submit(image)
        try:
            with self.lock:
                hits = self._image_hits(
                    lambda n: self.store.similarity_search_with_score_by_vector(vector, n, filter),
                    k,
                )
        except ValueError as exc:
            raise ApiError(400, "bad_filter", str(exc)) from exc
        return [search_hit(n, *hit) for n, hit in enumerate(hits, start=1)]

    def _image_hits(
        self, search: Callable[[int], list[tuple[Document, float]]], k: int
    ) -> list[tuple[Document, float, str | None]]:
        """The page shows images: a caption stored beside an image (``kind`` ``"text"``)
        answers as that image (its text kept as ``matched_text``), each image once, best
        score first. ``search(n)`` runs the store search for ``n`` hits (called under the
        lock); when captions are among the first ``k``, it searches deeper (4 k) so that
        captions lifted onto images already listed still leave ``k`` images."""
        hits = search(k)
        if not any(d.metadata.get("kind") == "text" for d, _ in hits):
            return [(d, s, None) for d, s in hits]
        hits = search(4 * k)
        wanted = sorted(
            {
                str(d.metadata["parent_id"])
                for d, _ in hits
                if d.metadata.get("kind") == "text" and d.metadata.get("parent_id")
            }
        )
        parents = {str(p.id): p for p in self.store.get_by_ids(wanted)} if wanted else {}
        out: list[tuple[Document, float, str | None]] = []
        seen: set[str] = set()
        for doc, score in hits:
            matched = None
            if doc.metadata.get("kind") == "text":
                parent = parents.get(str(doc.metadata.get("parent_id")))
                if parent is None:
                    continue  # a caption without its image: nothing to show
                matched, doc = doc.page_content, parent
            if str(doc.id) in seen:
                continue
            seen.add(str(doc.id))
            out.append((doc, score, matched))
            if len(out) == k:
                break
        return out

    def _embed_batch(self, images: list[Image.Image]) -> list[list[float]]:
        """One model call for the query images of a batch (:class:`MicroBatcher`).

        The images are decoded already: the encoder's own preprocessing and one forward,
        without the embedding pipeline, whose decode workers cost more to start per call
        (measured ~4 s against ~0.3 s a forward on a loaded two-core machine) than a small
        batch costs to embed.
        """
        import torch

        embeddings = self.store.image_embeddings
        pixels = torch.stack([embeddings.preprocess(image.convert("RGB")) for image in images])
        rows = finish(embeddings.encoder.encode_images(pixels), embeddings.normalize)
        return [[float(x) for x in row] for row in rows]

    def _decode_upload(self, data: bytes) -> Image.Image:
        """The upload as a small RGB image, decoded within :attr:`upload_budget`.

        The header gives the decode's cost before any pixel is decoded; the decode then runs
        at the size the model needs (JPEG DCT scaling, integer reduction before the RGB
        conversion, as the embedding pipeline does) and the result is reduced to what the
        model's resize needs before the budget is given back, so waiting for the model lock
        holds little.
        """
        # looked up at each call, so tests can instrument the decode (images.load_image)
        from langchain_image_embeddings.images import load_image

        options = dataclasses.replace(
            self.store.image_embeddings.load_options,
            allow_remote=False,
            max_bytes=self.settings.max_upload_bytes,
            max_pixels=self.settings.max_upload_pixels,
        )
        target = self._target_size()
        draft = None if target is None else (REDUCING_GAP * target[0], REDUCING_GAP * target[1])
        try:
            cost = decode_cost(open_image_header(io.BytesIO(data), "the upload", options), draft)
        except ImageLoadError as exc:
            raise _upload_error(exc, self.settings) from exc
        self.upload_budget.acquire(cost)
        try:
            image = load_image(data, options, draft_size=draft)
            return image if target is None else shrink(image, target)
        except ImageLoadError as exc:
            raise _upload_error(exc, self.settings) from exc
        finally:
            self.upload_budget.release(cost)

    def _target_size(self) -> tuple[int, int] | None:
        """``(width, height)`` an upload must cover for the model, ``None``: full size.

        The same size the embedding pipeline decodes stored images at (``fast_decode``).
        """
        embeddings = self.store.image_embeddings
        if not getattr(embeddings, "fast_decode", False):
            return None
        return decode_target_size(embeddings.encoder.preprocess_config)

    def similar(
        self, record_id: str, k: int, filter: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        self.check_k(k)
        doc = self.document(record_id)
        try:
            with self.lock:
                vector = [float(x) for x in self.store.backend.vectors([record_id])[0]]
                hits = self._image_hits(
                    lambda n: self.store.similarity_search_with_score_by_vector(vector, n, filter),
                    k + 1,
                )
        except ValueError as exc:
            raise ApiError(400, "bad_filter", str(exc)) from exc
        others = [hit for hit in hits if hit[0].id != doc.id][:k]
        return [search_hit(n, *hit) for n, hit in enumerate(others, start=1)]

    def duplicates(
        self, threshold: float, method: str = "centroid", max_group_size: int = 50
    ) -> list[DuplicateGroup]:
        """Near-duplicate groups (cached per threshold, method, cap and store state)."""
        from langchain_image_embeddings.duplicates import find_duplicates

        with self.lock:
            key = (round(threshold, 6), method, max_group_size, self._generation)
            if key not in self._duplicates:
                if len(self._duplicates) > 16:
                    self._duplicates.clear()
                self._duplicates[key] = find_duplicates(
                    self.store, threshold, method=method, max_group_size=max_group_size
                )
            return self._duplicates[key]

    def catalog(self) -> MetadataCatalog:
        """The store's metadata keys, values and browse order (rebuilt when the store
        changes size or a record is removed)."""
        with self.lock:
            size = len(self.store)
            if self._catalog is None or self._catalog.size != size:
                self._catalog = MetadataCatalog(self.store.records())
            return self._catalog

    def filters(self, values: list[str] | None) -> dict[str, Any] | None:
        """``KEY=VALUE`` strings as a store filter, text values in the stored case when only
        one stored value matches ignoring case (``format=jpeg`` finds ``JPEG``).

        Raises:
            ApiError: A malformed filter (see :func:`parse_filters`).
        """
        return equality_filter(self._resolved_pairs(values))

    def browse(
        self, order: str, seed: int, k: int, offset: int, filter_values: list[str] | None
    ) -> tuple[int, list[dict[str, Any]]]:
        """A page of the store without a query: ``recent`` (newest ``mtime`` first) or
        ``random`` (by ``seed``); returns the number of matching records and the page."""
        self.check_k(k)
        pairs = [(key, filter_value(raw)) for key, raw in self._resolved_pairs(filter_values)]
        ids = self.catalog().browse(order, seed)
        if pairs:
            with self.lock:
                records = self.store.records()
            ids = [i for i in ids if all(records.get(i, {}).get(k) == v for k, v in pairs)]
        with self.lock:
            docs = self.store.get_by_ids(ids[offset : offset + k])
        hits = [search_hit(offset + n, d, 0.0) for n, d in enumerate(docs, start=1)]
        return len(ids), hits

    def _resolved_pairs(self, values: list[str] | None) -> list[tuple[str, str]]:
        pairs = parse_filter_pairs(values)
        if not pairs:
            return []
        catalog = self.catalog()
        return [
            (key, catalog.resolve(key, raw) if isinstance(filter_value(raw), str) else raw)
            for key, raw in pairs
        ]

    def remove(self, ids: list[str]) -> list[str]:
        """Remove records from the index (only with ``allow_delete``; files stay on disk).

        Returns:
            The ids that were in the store and are now removed.

        Raises:
            ApiError: 403 ``read_only`` when the server was not started with the write flag;
                400 ``bad_id`` for a malformed id.
        """
        if not self.settings.allow_delete:
            raise ApiError(
                403,
                "read_only",
                "this server only reads the index; start it with --allow-delete to remove "
                "records from the index (files on disk are never deleted)",
            )
        for record_id in ids:
            _check_id(record_id)
        with self.lock:
            present = sorted(self.store.existing_ids(ids))
            if present:
                self.store.delete(present)
                self.store.persist()
            self._generation += 1
            self._duplicates.clear()
            self._catalog = None
        return present
