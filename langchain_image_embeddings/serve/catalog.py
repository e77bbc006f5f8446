"""What metadata a served store holds: its keys with sample values (the page's filter
helper), case-insensitive filter values where they are unambiguous, and the order of the
browse grid. Pure Python, no FastAPI; built from ``store.records()`` once per store size.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.catalog import MetadataCatalog

        catalog = MetadataCatalog({"a": {"format": "JPEG"}, "b": {"format": "PNG"}})
        catalog.resolve("format", "jpeg")  # "JPEG": one stored value matches, whatever the case
        catalog.keys()[0]["key"]  # "format"
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

__all__ = ["MAX_SAMPLES", "MetadataCatalog"]

#: Sample values listed per key (the most frequent first).
MAX_SAMPLES = 8
#: Keys whose values are paths or hashes: listed, but no samples are offered to filter on.
_UNIQUE_KEYS = {"source", "sources", "sha256", "mtime", "id", "page_content"}


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


class MetadataCatalog:
    """The metadata keys of a store, their values by lowercase form, and a browse order.

    Args:
        records: ``{id: metadata}`` as ``ImageVectorStore.records()`` returns it.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.serve.catalog import MetadataCatalog

            catalog = MetadataCatalog({"a": {"format": "JPEG", "width": 512}})
            catalog.keys()  # [{"key": "format", "count": 1, "kind": "text", ...}, ...]
    """

    def __init__(self, records: dict[str, dict[str, Any]]) -> None:
        self.size = len(records)
        self._values: dict[str, Counter[Any]] = {}
        self._by_lower: dict[str, dict[str, set[str]]] = {}
        self._mtime: dict[str, float] = {}
        for record_id, meta in records.items():
            for key, value in meta.items():
                if not _scalar(value):
                    continue
                self._values.setdefault(key, Counter())[value] += 1
                if isinstance(value, str):
                    self._by_lower.setdefault(key, {}).setdefault(value.lower(), set()).add(value)
            if meta.get("kind") == "text":
                continue  # a caption beside an image: found through its image, never browsed
            mtime = meta.get("mtime")
            self._mtime[record_id] = float(mtime) if isinstance(mtime, (int, float)) else 0.0

    def keys(self) -> list[dict[str, Any]]:
        """Every scalar metadata key: ``key``, ``count`` (records holding it), ``kind``
        (``number`` or ``text``) and up to :data:`MAX_SAMPLES` frequent ``samples``."""
        out = []
        for key in sorted(self._values):
            counter = self._values[key]
            numbers = all(not isinstance(v, str) for v in counter)
            samples = (
                []
                if key in _UNIQUE_KEYS
                else [value for value, _ in counter.most_common(MAX_SAMPLES)]
            )
            out.append(
                {
                    "key": key,
                    "count": sum(counter.values()),
                    "distinct": len(counter),
                    "kind": "number" if numbers else "text",
                    "samples": samples,
                }
            )
        return out

    def resolve(self, key: str, value: str) -> str:
        """``value`` in the case the store holds it, when exactly one stored value of ``key``
        matches it ignoring case (``jpeg`` finds ``JPEG``); else ``value`` unchanged (an exact
        match, no match, or several that differ only by case: ``a.JPG`` and ``a.jpg``)."""
        forms = self._by_lower.get(key, {})
        if value in forms.get(value.lower(), ()):
            return value
        matches = forms.get(value.lower(), set())
        return next(iter(matches)) if len(matches) == 1 else value

    def browse(self, order: str, seed: int) -> list[str]:
        """Every image record's id (captions left out), ``recent`` (newest ``mtime`` first) or ``random`` (shuffled by
        ``seed``, the same order for the same seed, so a browse link can be shared)."""
        ids = list(self._mtime)
        if order == "recent":
            return sorted(ids, key=lambda i: (-self._mtime[i], i))

        def shuffled(record_id: str) -> bytes:
            return hashlib.blake2b(f"{seed}:{record_id}".encode(), digest_size=8).digest()

        return sorted(ids, key=shuffled)
