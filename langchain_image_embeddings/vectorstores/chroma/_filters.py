"""The stores' metadata filters as a Chroma ``where`` clause.

The FAISS store's filter vocabulary (:mod:`~langchain_image_embeddings.vectorstores._filters`)
is what every store takes; Chroma's ``where`` accepts one key per dict and one operator
per condition and has no ``$not``, so :func:`chroma_where` rewrites a filter into that
shape with the same matches (as :mod:`~langchain_image_embeddings.vectorstores.milvus._filters`
does for Milvus expressions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_image_embeddings.vectorstores._filters import COMPARE

__all__ = ["NEVER", "chroma_where"]

# Chroma's ``where`` takes one key per dict and one operator per condition, and has no
# ``$not``: the shared vocabulary is rewritten into that shape (same matches as above).
# While rewriting, ``None`` stands for "always true" (no condition) and NEVER for "always
# false" (an empty ``$in`` or ``$or``), which Chroma has no literal for.
_NEGATED = {
    "$eq": "$ne",
    "$ne": "$eq",
    "$in": "$nin",
    "$nin": "$in",
    "$contains": "$not_contains",
    "$not_contains": "$contains",
}
#: A clause no record satisfies (``$ne`` matches a missing key, so the two exclude each other).
NEVER: dict[str, Any] = {"$and": [{"_": {"$eq": 0}}, {"_": {"$ne": 0}}]}

Where = dict[str, Any] | None


def _join(op: str, parts: list[Where]) -> Where:
    if op == "$or" and (not parts or any(p is None for p in parts)):
        return NEVER if not parts else None
    kept = [p for p in parts if p is not None]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else {op: kept}


def _chroma_field(key: str, condition: Any, negate: bool) -> Where:
    if isinstance(condition, Mapping):
        pairs = [("$ne" if op == "$neq" else op, value) for op, value in condition.items()]
    elif isinstance(condition, list):
        pairs = [("$in", list(condition))]
    else:
        pairs = [("$eq", condition)]
    parts: list[Where] = []
    for op, value in pairs:
        if op not in COMPARE and op != "$not_contains":
            raise ValueError(f"unknown filter operator {op!r}; known: {sorted(COMPARE)}")
        if negate:
            if op not in _NEGATED:
                raise ValueError(
                    f"$not over {op!r} on {key!r} has no Chroma equivalent (records without "
                    f"{key!r} would differ): write the opposite comparison instead"
                )
            op = _NEGATED[op]
        if op in ("$in", "$nin") and not value:  # Chroma refuses empty lists
            parts.append(NEVER if op == "$in" else None)
        else:
            parts.append({key: {op: value}})
    # not (a and b) == (not a) or (not b)
    return _join("$or" if negate else "$and", parts)


def _chroma(filter: Mapping[str, Any], negate: bool) -> Where:
    parts: list[Where] = []
    for key, condition in filter.items():
        if key in ("$and", "$or"):
            op = key if not negate else ("$or" if key == "$and" else "$and")
            parts.append(_join(op, [_chroma(f, negate) for f in condition]))
        elif key == "$not":
            parts.append(_chroma(condition, not negate))
        else:
            parts.append(_chroma_field(key, condition, negate))
    if not parts:  # {}: matches everything (its negation nothing)
        return NEVER if negate else None
    return _join("$or" if negate else "$and", parts)


def chroma_where(filter: Mapping[str, Any] | None) -> Where:
    """A filter dict of this module's vocabulary as a Chroma ``where`` clause.

    Several keys become ``$and``, a list value ``$in``, several operators on one key
    ``$and``, ``$neq`` ``$ne``, and ``$not`` is pushed down (De Morgan) onto the operators
    that have an opposite (``$eq``/``$ne``, ``$in``/``$nin``, ``$contains``). ``None``: no
    condition.

    Raises:
        ValueError: An unknown operator, or ``$not`` over a range comparison (``$gt`` ...),
            whose negation Chroma cannot express for records that lack the key.

    Example:
        .. code-block:: python

            chroma_where({"format": "PNG", "width": {"$gte": 512}})
            # {"$and": [{"format": {"$eq": "PNG"}}, {"width": {"$gte": 512}}]}
    """
    if not filter:
        return None
    return _chroma(filter, False)
