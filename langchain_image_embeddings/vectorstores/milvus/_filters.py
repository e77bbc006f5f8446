"""Metadata filters for the Milvus store: the dict vocabulary of the other stores as a Milvus
boolean expression on the JSON ``metadata`` field.

``{"format": "PNG"}`` becomes ``(metadata["format"] is not null and (metadata["format"] == "PNG"))``.
Keys and string values are quoted and escaped (``\\``, ``"``, newlines, tabs). Milvus's
``in`` does not take a JSON path on Milvus Lite, so ``$in`` is a disjunction of equalities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["milvus_expr", "milvus_ids_expr"]


def _quote(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"filter value {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    raise ValueError(
        f"filter value {value!r} ({type(value).__name__}): Milvus filters take str, int, "
        "float, bool or None"
    )


def _present(path: str, test: str) -> str:
    """``test`` where the key is present, else false (never Milvus's null: ``not`` stays exact)."""
    return f"({path} is not null and ({test}))"


def _one_of(path: str, options: Any) -> str:
    if not isinstance(options, (list, tuple, set, frozenset)):
        raise ValueError(f"$in/$nin take a list, got {options!r}")
    tests = [f"{path} == {_literal(o)}" for o in options if o is not None]
    found = _present(path, " or ".join(tests)) if tests else "false"
    return f"({path} is null or {found})" if None in options else found


def _equal(path: str, value: Any) -> str:
    return f"{path} is null" if value is None else _present(path, f"{path} == {_literal(value)}")


_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _condition(path: str, op: str, operand: Any) -> str:
    if op == "$eq":
        return _equal(path, operand)
    if op in ("$ne", "$neq"):
        return f"not ({_equal(path, operand)})"
    if op in _ORDER:
        if operand is None:
            return "false"
        return _present(path, f"{path} {_ORDER[op]} {_literal(operand)}")
    if op == "$in":
        return _one_of(path, operand)
    if op == "$nin":
        return f"not ({_one_of(path, operand)})"
    if op == "$contains":
        return _present(path, f"json_contains({path}, {_literal(operand)})")
    raise ValueError(
        f"unknown filter operator {op!r}; known: $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, "
        "$contains, $and, $or, $not"
    )


def _join(parts: list[str], word: str) -> str:
    if not parts:
        return "true" if word == "and" else "false"
    return parts[0] if len(parts) == 1 else "(" + f" {word} ".join(parts) + ")"


def milvus_expr(filter: Mapping[str, Any] | str | None, field: str = "metadata") -> str:
    """A Milvus boolean expression for a metadata filter (``""`` for no filter).

    ``{"format": "PNG"}`` is equality (a list value means "one of"); ``{"width": {"$gte": 512}}``
    compares; ``$and`` / ``$or`` / ``$not`` combine; several keys must all match. A missing key
    never matches a comparison, and matches ``$ne`` / ``$nin`` / ``$not`` (as in the FAISS
    store): every comparison is guarded with ``is not null``, so Milvus's three-valued logic
    never leaves a ``not`` undecided. A string is returned unchanged (a Milvus expression).

    Raises:
        ValueError: An unknown operator or a value Milvus cannot compare.

    Example:
        .. code-block:: python

            milvus_expr({"format": {"$in": ["PNG", "JPEG"]}})
            # '(metadata["format"] is not null and (metadata["format"] == "PNG" or ...))'
    """
    if filter is None:
        return ""
    if isinstance(filter, str):
        return filter
    if not isinstance(filter, Mapping):
        raise ValueError(f"a Milvus filter is a dict or an expression string, got {filter!r}")
    if not filter:
        return ""
    parts: list[str] = []
    for key, cond in filter.items():
        if key in ("$and", "$or"):
            subs = [milvus_expr(f, field) or "true" for f in cond]
            parts.append(_join(subs, key[1:]))
        elif key == "$not":
            parts.append(f"not ({milvus_expr(cond, field) or 'true'})")
        elif key.startswith("$"):
            raise ValueError(f"unknown filter operator {key!r} at the top of a filter")
        else:
            path = f"{field}[{_quote(str(key))}]"
            if isinstance(cond, Mapping):
                parts.append(_join([_condition(path, op, v) for op, v in cond.items()], "and"))
            elif isinstance(cond, list):
                parts.append(_one_of(path, cond))
            else:
                parts.append(_equal(path, cond))
    return _join(parts, "and")


def milvus_ids_expr(ids: Sequence[str], field: str = "id") -> str:
    """A Milvus expression matching the primary keys ``ids`` (``id in ["a", "b"]``), every
    id quoted and escaped.

    pymilvus's own ``ids=`` argument pastes ids into single quotes unescaped, so an id
    holding a quote could be written but neither read nor deleted.

    Example:
        >>> milvus_ids_expr(["a.jpg", "b.jpg"])
        'id in ["a.jpg", "b.jpg"]'
    """
    return f"{field} in [" + ", ".join(_quote(str(i)) for i in ids) + "]"
