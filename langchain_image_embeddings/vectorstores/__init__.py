"""Image stores over FAISS, Chroma and Milvus, and :func:`open_store` for store specs.

Store specs (used by the ``imgemb`` command):

* ``faiss:PATH`` - a FAISS store saved in the folder ``PATH``;
* ``chroma:PATH`` or ``chroma:PATH#COLLECTION`` - an embedded Chroma folder;
* ``chroma+http://HOST:PORT/COLLECTION`` - a collection on a Chroma server;
* ``milvus+http://HOST:PORT/COLLECTION`` - a collection on a Milvus server (or
  ``milvus-lite server``); ``milvus+https://`` for TLS. A token, if the server needs one, is
  read from the ``MILVUS_TOKEN`` environment variable.

FAISS, Chroma and pymilvus are imported only when a store is opened.

Writers of a FAISS folder or an embedded Chroma folder hold an exclusive lock on it
(:class:`StoreLock`): a second writer process fails at once with
:class:`~langchain_image_embeddings.errors.StoreLockedError` ("store locked"). Readers
take no lock.
"""

from __future__ import annotations

import importlib
import urllib.parse
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.errors import StoreError

if TYPE_CHECKING:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore
    from langchain_image_embeddings.vectorstores.chroma import ChromaImageStore
    from langchain_image_embeddings.vectorstores.faiss import FAISSImageStore
    from langchain_image_embeddings.vectorstores.locking import StoreLock
    from langchain_image_embeddings.vectorstores.milvus import MilvusImageStore
    from langchain_image_embeddings.vectorstores.records import (
        AddResult,
        PendingAdd,
        content_id,
        relevance_from_cosine,
    )

_EXPORTS = {
    "AddResult": "records",
    "ImageVectorStore": "base",
    "PendingAdd": "records",
    "StoreLock": "locking",
    "content_id": "records",
    "relevance_from_cosine": "records",
    "ChromaImageStore": "chroma",
    "FAISSImageStore": "faiss",
    "MilvusImageStore": "milvus",
}

__all__ = [
    "AddResult",
    "ChromaImageStore",
    "FAISSImageStore",
    "ImageVectorStore",
    "MilvusImageStore",
    "PendingAdd",
    "StoreLock",
    "StoreSpec",
    "content_id",
    "open_store",
    "parse_store_spec",
    "relevance_from_cosine",
    "store_info",
]


class StoreSpec:
    """A parsed store spec: ``kind`` is ``"faiss"``, ``"chroma"``, ``"chroma+http"``,
    ``"milvus+http"`` or ``"milvus+https"``.

    Example:
        .. code-block:: python

            spec = parse_store_spec("chroma+http://127.0.0.1:8000/photos")
            spec.kind, spec.host, spec.port, spec.collection
    """

    def __init__(
        self, kind: str, path: str = "", host: str = "", port: int = 0, collection: str = "images"
    ) -> None:
        self.kind = kind
        self.path = path
        self.host = host
        self.port = port
        self.collection = collection

    def __repr__(self) -> str:
        return f"StoreSpec({self.kind!r}, path={self.path!r}, host={self.host!r}, port={self.port}, collection={self.collection!r})"


def parse_store_spec(spec: str) -> StoreSpec:
    """Parse ``faiss:PATH``, ``chroma:PATH[#COLLECTION]``, ``chroma+http://HOST:PORT/COLLECTION``
    or ``milvus+http://HOST:PORT/COLLECTION``.

    Raises:
        ValueError: A malformed spec.
    """
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError(
            f"store spec {spec!r}: expected faiss:PATH, chroma:PATH, "
            "chroma+http://HOST:PORT/COLLECTION or milvus+http://HOST:PORT/COLLECTION"
        )
    if kind == "faiss":
        return StoreSpec("faiss", path=rest)
    if kind == "chroma":
        path, _, collection = rest.partition("#")
        return StoreSpec("chroma", path=path, collection=collection or "images")
    if kind == "chroma+http":
        url = urllib.parse.urlsplit("http:" + rest)
        if not url.hostname or not url.port:
            raise ValueError(f"store spec {spec!r}: expected chroma+http://HOST:PORT/COLLECTION")
        collection = url.path.strip("/") or "images"
        return StoreSpec("chroma+http", host=url.hostname, port=url.port, collection=collection)
    if kind in ("milvus+http", "milvus+https"):
        url = urllib.parse.urlsplit("http:" + rest)
        collection = url.path.strip("/") or "images"
        if not url.hostname or not url.port or "/" in collection:
            raise ValueError(f"store spec {spec!r}: expected {kind}://HOST:PORT/COLLECTION")
        return StoreSpec(kind, host=url.hostname, port=url.port, collection=collection)
    raise ValueError(
        f"store spec {spec!r}: unknown kind {kind!r} (faiss, chroma, chroma+http, milvus+http)"
    )


def _milvus_uri(parsed: StoreSpec) -> str:
    scheme = parsed.kind.partition("+")[2]
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{scheme}://{host}:{parsed.port}"


def _milvus_token() -> str:
    import os

    return os.environ.get("MILVUS_TOKEN", "")


def open_store(
    spec: str,
    embeddings: ImageEmbeddings | None = None,
    *,
    create: bool = True,
    faiss_index: str | None = None,
) -> ImageVectorStore:
    """Open (or, with ``create`` and a model, create) the store a spec names.

    With ``embeddings=None`` the model recorded in the store is used. ``faiss_index``
    (FAISS stores): the index kind, ``flat``, ``hnsw``, ``ivf-pq``, ``auto`` or a
    ``faiss.index_factory`` string; ``None`` keeps a saved store's kind (new stores: flat).

    Raises:
        ValueError: A malformed spec.
        StoreError: No such store (and ``create`` is false or no model), unreadable store.
        ModelMismatchError: ``embeddings`` is not the model that wrote the store.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.vectorstores import open_store

            store = open_store("faiss:index")                # model from the manifest
            store.search_by_text("a red rocket", k=3)
    """
    parsed = parse_store_spec(spec)
    if parsed.kind == "faiss":
        from langchain_image_embeddings.vectorstores.faiss import FAISSImageStore

        if create:
            return FAISSImageStore.open(parsed.path, embeddings, index=faiss_index)
        return FAISSImageStore.load(parsed.path, embeddings, index=faiss_index)
    if parsed.kind.startswith("milvus+"):
        from langchain_image_embeddings.vectorstores.milvus import MilvusImageStore

        return MilvusImageStore.connect(
            _milvus_uri(parsed),
            embeddings,
            collection_name=parsed.collection,
            token=_milvus_token(),
            create=create,
        )
    from langchain_image_embeddings.vectorstores.chroma import ChromaImageStore

    if parsed.kind == "chroma":
        from pathlib import Path

        if not create and not Path(parsed.path).is_dir():
            raise StoreError(f"no Chroma store at {parsed.path}")
        return ChromaImageStore.persistent(
            parsed.path, embeddings, collection_name=parsed.collection
        )
    return ChromaImageStore.http(
        parsed.host, parsed.port, embeddings, collection_name=parsed.collection
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def store_info(spec: str) -> dict[str, Any]:
    """What a store holds and which model wrote it, without loading the model.

    Raises:
        ValueError: A malformed spec.
        StoreError: No store there.
    """
    parsed = parse_store_spec(spec)
    if parsed.kind == "faiss":
        from langchain_image_embeddings.vectorstores.faiss import read_manifest

        manifest = read_manifest(parsed.path)
        model = manifest.get("model") or {}
        index = manifest.get("index") or {}  # version 1 stores: exact, no index entry
        count = int(manifest.get("count", 0))
        return {
            "store": spec,
            "kind": "faiss",
            "path": parsed.path,
            "count": count,
            "model": model.get("model"),
            "dim": model.get("dim"),
            "metric": manifest.get("metric"),
            "index": index.get("kind", "flat"),
            "index_requested": index.get("requested", "flat"),
            "index_factory": index.get("factory", "Flat"),
            "index_memory_bytes": index.get(
                "memory_bytes", count * int(manifest.get("dim") or model.get("dim") or 0) * 4
            ),
            "index_params": index.get("params", {}),
            "recall_at_10": index.get("recall", 1.0),
            "segments": 1 + len(manifest.get("segments") or []),
            "deleted_rows": int((manifest.get("deletions") or {}).get("count", 0)),
        }
    if parsed.kind.startswith("milvus+"):
        from langchain_image_embeddings.vectorstores.milvus import milvus_info

        uri = _milvus_uri(parsed)
        info = milvus_info(uri, parsed.collection, token=_milvus_token())
        return {
            "store": spec,
            "kind": parsed.kind,
            "path": f"{parsed.host}:{parsed.port}",
            "collection": parsed.collection,
            **info,
        }
    from langchain_image_embeddings._optional import require

    chromadb = require("chromadb", "chromadb")
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    try:
        if parsed.kind == "chroma":
            from pathlib import Path

            if not Path(parsed.path).is_dir():
                raise StoreError(f"no Chroma store at {parsed.path}")
            client = chromadb.PersistentClient(path=parsed.path, settings=settings)
        else:
            client = chromadb.HttpClient(host=parsed.host, port=parsed.port, settings=settings)
        collection = client.get_collection(parsed.collection)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(
            f"cannot open Chroma collection {parsed.collection!r} of {spec}: {exc}"
        ) from exc
    meta = collection.metadata or {}
    return {
        "store": spec,
        "kind": parsed.kind,
        "path": parsed.path or f"{parsed.host}:{parsed.port}",
        "collection": parsed.collection,
        "count": int(collection.count()),
        "model": meta.get("imgemb_model"),
        "dim": meta.get("imgemb_dim"),
        "metric": (collection.configuration.get("hnsw") or {}).get("space"),
    }
