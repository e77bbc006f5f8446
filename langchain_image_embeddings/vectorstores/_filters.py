"""Metadata filters for the FAISS store, in the operator vocabulary Chroma and LangChain use.

A filter is a callable ``metadata -> bool`` or a dict: ``{"format": "PNG"}`` (equality; a
list value means "one of"), ``{"width": {"$gte": 512}}`` with ``$eq``, ``$ne``, ``$gt``,
``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin``, ``$contains`` (a list field holds the value),
and ``$and`` / ``$or`` / ``$not`` to combine. Several keys in one dict must all match.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["COMPARE", "MetadataFilter", "metadata_matches"]

MetadataFilter = Mapping[str, Any] | Callable[[dict[str, Any]], bool]

#: The comparison operators a filter dict may use, by name.
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$neq": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda value, options: value in options,
    "$nin": lambda value, options: value not in options,
    "$contains": lambda value, item: isinstance(value, (list, tuple, str)) and item in value,
}


def _field_matches(value: Any, condition: Any) -> bool:
    if isinstance(condition, Mapping):
        for op, operand in condition.items():
            compare = COMPARE.get(op)
            if compare is None:
                raise ValueError(f"unknown filter operator {op!r}; known: {sorted(COMPARE)}")
            try:
                if not compare(value, operand):
                    return False
            except TypeError:  # e.g. None > 3: no match rather than a crash
                return False
        return True
    if isinstance(condition, list):
        return value in condition
    return bool(value == condition)


def metadata_matches(metadata: dict[str, Any], filter: MetadataFilter) -> bool:
    """Whether ``metadata`` satisfies ``filter``.

    Raises:
        ValueError: An unknown operator.

    Example:
        .. code-block:: python

            metadata_matches({"format": "PNG", "width": 640}, {"width": {"$gte": 512}})   # True
    """
    if callable(filter) and not isinstance(filter, Mapping):
        return bool(filter(metadata))
    for key, condition in filter.items():
        if key == "$and":
            if not all(metadata_matches(metadata, f) for f in condition):
                return False
        elif key == "$or":
            if not any(metadata_matches(metadata, f) for f in condition):
                return False
        elif key == "$not":
            if metadata_matches(metadata, condition):
                return False
        elif not _field_matches(metadata.get(key), condition):
            return False
    return True
