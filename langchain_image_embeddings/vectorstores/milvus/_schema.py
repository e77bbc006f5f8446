"""The Milvus collection of an image store: its schema and index, the model record in its
properties, the checks on an existing collection, and :func:`milvus_info`.

Schema of a collection the store creates:

* ``id`` - ``VARCHAR(512)``, the primary key (content ids for image models);
* ``vector`` - ``FLOAT_VECTOR(dim)``, unit vectors, metric ``COSINE``, an ``HNSW`` index
  (:data:`INDEX_PARAMS`; searches use ``ef = max(`` :data:`SEARCH_EF` ``, k)``);
* ``page_content`` - ``VARCHAR(65535)``, the image URI (or the text);
* ``metadata`` - ``JSON``, the document's metadata.

The model (spec, dimension, fingerprint) is recorded in the collection's properties as
``imgemb.model``, ``imgemb.dim``, ``imgemb.fingerprint``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores.milvus._calls import call_milvus, connect

__all__ = [
    "DEFAULT_COLLECTION",
    "FIELDS",
    "INDEX_PARAMS",
    "INDEX_TYPE",
    "MAX_ID_LENGTH",
    "MAX_LIMIT",
    "MAX_TEXT_LENGTH",
    "METRIC",
    "SEARCH_EF",
    "check_collection_name",
    "check_fields",
    "check_metric",
    "collection_schema",
    "milvus_info",
    "model_properties",
    "stored_record",
]

DEFAULT_COLLECTION = "images"
#: The vector index: HNSW on cosine (Milvus Lite and Milvus both support it).
INDEX_TYPE = "HNSW"
INDEX_PARAMS: dict[str, int] = {"M": 16, "efConstruction": 200}
#: Smallest HNSW ``ef`` of a search (raised to ``k`` when ``k`` is larger).
SEARCH_EF = 64
METRIC = "COSINE"
#: Largest ``limit`` Milvus accepts in one search.
MAX_LIMIT = 16384
MAX_ID_LENGTH = 512
MAX_TEXT_LENGTH = 65535
#: The fields of a collection of this store.
FIELDS = ("id", "vector", "page_content", "metadata")

_PROP = "imgemb."
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


def check_collection_name(name: str) -> None:
    """Refuse a name Milvus would refuse, before any call.

    Raises:
        StoreError: Not letters, digits and ``_`` starting with a letter or ``_``.

    Example:
        >>> check_collection_name("photos_2024")
    """
    if not _NAME.match(name):
        raise StoreError(
            f"invalid Milvus collection name {name!r}: letters, digits and _, "
            "not starting with a digit"
        )


def stored_record(properties: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model record in a collection's properties (``{}`` when none).

    Example:
        >>> stored_record({"imgemb.model": "timm:efficientnet_lite0", "other": "x"})
        {'model': 'timm:efficientnet_lite0'}
    """
    props = properties or {}
    return {k[len(_PROP) :]: v for k, v in props.items() if str(k).startswith(_PROP)}


def model_properties(record: Mapping[str, Any]) -> dict[str, str]:
    """A model record as collection properties (the inverse of :func:`stored_record`).

    Example:
        >>> model_properties({"model": "timm:efficientnet_lite0", "dim": 1280})
        {'imgemb.model': 'timm:efficientnet_lite0', 'imgemb.dim': '1280'}
    """
    return {_PROP + k: str(v) for k, v in record.items()}


def collection_schema(dim: int) -> tuple[Any, Any]:
    """``(schema, index_params)`` of a new collection of ``dim``-d vectors (see the module)."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(
        auto_id=False,
        enable_dynamic_field=False,
        description="langchain-image-embeddings image store",
    )
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
    schema.add_field("page_content", DataType.VARCHAR, max_length=MAX_TEXT_LENGTH)
    schema.add_field("metadata", DataType.JSON)
    index = MilvusClient.prepare_index_params()
    index.add_index(
        field_name="vector",
        index_type=INDEX_TYPE,
        metric_type=METRIC,
        params=dict(INDEX_PARAMS),
    )
    return schema, index


def check_fields(info: Mapping[str, Any], where: str) -> int | None:
    """Check that a described collection has this store's fields; return its dimension.

    Raises:
        StoreError: It is not a collection of this store.
    """
    fields = {f["name"]: f for f in info.get("fields", [])}
    if not set(FIELDS) <= set(fields):
        raise StoreError(
            f"{where} is not an image-store collection: it has the fields "
            f"{sorted(fields)}, expected {list(FIELDS)}"
        )
    return int((fields["vector"].get("params") or {}).get("dim", 0)) or None


def check_metric(index: Mapping[str, Any] | None, where: str) -> None:
    """Refuse a vector index whose metric is not cosine (or inner product on unit vectors).

    Raises:
        StoreError: Another metric (L2 ...).
    """
    metric = (index or {}).get("metric_type")
    if metric not in (None, METRIC, "IP"):
        raise StoreError(f"{where} uses the {metric} metric, not cosine")


def milvus_info(uri: str, collection_name: str, *, token: str = "") -> dict[str, Any]:
    """What a collection holds and which model wrote it, without loading the model.

    Raises:
        StoreError: The server cannot be reached or has no such collection.
    """
    client = connect(uri, token=token)
    try:
        where = f"Milvus collection {collection_name!r}"
        if not call_milvus("has collection", client.has_collection, collection_name):
            raise StoreError(f"no {where} on {uri}")
        info = call_milvus("describe", client.describe_collection, collection_name)
        stored = stored_record(info.get("properties"))
        rows = call_milvus(
            "count", client.query, collection_name, filter="", output_fields=["count(*)"]
        )
        index = call_milvus("describe index", client.describe_index, collection_name, "vector")
        index = index or {}
        return {
            "count": int(rows[0]["count(*)"]) if rows else 0,
            "model": stored.get("model"),
            "dim": int(stored["dim"])
            if str(stored.get("dim", "")).isdigit()
            else stored.get("dim"),
            "metric": str(index.get("metric_type", "")).lower() or None,
            "index": index.get("index_type"),
        }
    finally:
        with contextlib.suppress(Exception):
            client.close()
