"""Milvus store pieces that need no server: filter expressions, store specs, error mapping."""

from __future__ import annotations

import pytest

from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores import parse_store_spec
from langchain_image_embeddings.vectorstores.milvus._calls import call_milvus
from langchain_image_embeddings.vectorstores.milvus._filters import milvus_expr


def test_expressions_quote_keys_and_values() -> None:
    assert milvus_expr(None) == "" and milvus_expr({}) == ""
    assert milvus_expr({"format": "PNG"}) == (
        '(metadata["format"] is not null and (metadata["format"] == "PNG"))'
    )
    weird = 'a"b\\c\nd'
    expr = milvus_expr({weird: weird})
    assert expr.count('"a\\"b\\\\c\\nd"') == 3  # key twice, value once, all escaped
    assert milvus_expr({"n": True}).endswith("== true))")
    assert milvus_expr({"n": {"$in": []}}) == "false"
    assert milvus_expr('metadata["n"] > 1') == 'metadata["n"] > 1'  # raw expressions pass


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"n": {"$near": 1}}, "unknown filter operator"),
        ({"$xor": []}, "unknown filter operator"),
        ({"n": {"a": 1}}, "unknown filter operator"),
        ({"n": float("nan")}, "not a finite number"),
        ({"n": {"$in": "abc"}}, "take a list"),
        ({"n": {"x": 1}.items()}, "Milvus filters take"),
    ],
)
def test_bad_filters_are_value_errors(bad: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        milvus_expr(bad)


def test_store_spec() -> None:
    spec = parse_store_spec("milvus+http://127.0.0.1:19530/photos")
    assert (spec.kind, spec.host, spec.port, spec.collection) == (
        "milvus+http",
        "127.0.0.1",
        19530,
        "photos",
    )
    assert parse_store_spec("milvus+http://localhost:1/").collection == "images"
    for bad in ("milvus+http://host/photos", "milvus+http://h:1/a/b"):
        with pytest.raises(ValueError):
            parse_store_spec(bad)


def test_connection_errors_are_retried_then_store_errors() -> None:
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise ConnectionRefusedError("refused")

    with pytest.raises(StoreError, match="after 3 tries"):
        call_milvus("count", refused, backoff_s=0)
    assert len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("bad expression")

    calls.clear()
    with pytest.raises(StoreError, match="Milvus count failed: bad expression"):
        call_milvus("count", broken, backoff_s=0)
    assert len(calls) == 1
