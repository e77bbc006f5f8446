"""``KEY=VALUE`` metadata filters, shared by ``imgemb search --filter`` and the serve API.

Values that read as integers or decimals are compared as numbers (``width=512`` matches the
integer ``width`` the stores record), anything else as text; several pairs are ANDed with
``$and``, the one form every store (FAISS, Chroma, Milvus) accepts. Pure Python, no FastAPI.

Example:
    .. code-block:: python

        from langchain_image_embeddings.serve.filters import equality_filter

        equality_filter([("format", "JPEG"), ("width", "512")])
        # {"$and": [{"format": "JPEG"}, {"width": 512}]}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["equality_filter", "filter_value"]


_INT = re.compile(r"^-?\d{1,18}$")
_FLOAT = re.compile(r"^-?\d+\.\d+$")


def filter_value(raw: str) -> int | float | str:
    """``raw`` as an ``int`` or ``float`` when it reads as one, else unchanged."""
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw)
    return raw


def equality_filter(pairs: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    """A store filter matching records whose metadata equals every ``(key, value)`` pair.

    Returns ``None`` for no pairs, ``{key: value}`` for one, ``{"$and": [...]}`` for more
    (Chroma refuses a dict of several keys; ``$and`` works on every store).
    """
    clauses = [{key: filter_value(raw)} for key, raw in pairs]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
