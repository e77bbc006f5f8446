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
(see :mod:`langchain_image_embeddings._locks`): a second writer process fails at once with
:class:`~langchain_image_embeddings.errors.StoreLockedError` ("store locked"). Readers
take no lock.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings._exports import lazy_exports
from langchain_image_embeddings.errors import StoreError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_image_embeddings.vectorstores._records import (
        AddResult,
        PendingAdd,
        content_id,
        relevance_from_cosine,
    )
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore
    from langchain_image_embeddings.vectorstores.chroma._store import ChromaImageStore
    from langchain_image_embeddings.vectorstores.faiss._store import FAISSImageStore
    from langchain_image_embeddings.vectorstores.milvus._store import MilvusImageStore
    from langchain_image_embeddings.vectorstores.multivector._milvus import MilvusMultiVectorStore
    from langchain_image_embeddings.vectorstores.multivector._store import MultiVectorImageStore

# Lazy: the stores import their backends (FAISS, chromadb, pymilvus) only when used.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AddResult": "._records",
        "ImageVectorStore": ".base",
        "PendingAdd": "._records",
        "content_id": "._records",
        "relevance_from_cosine": "._records",
        "ChromaImageStore": ".chroma._store",
        "FAISSImageStore": ".faiss._store",
        "MilvusImageStore": ".milvus._store",
        "MilvusMultiVectorStore": ".multivector._milvus",
        "MultiVectorImageStore": ".multivector._store",
    },
)

__all__ = [
    "AddResult",
    "ChromaImageStore",
    "FAISSImageStore",
    "ImageVectorStore",
    "MilvusImageStore",
    "MilvusMultiVectorStore",
    "MultiVectorImageStore",
    "PendingAdd",
    "StoreSpec",
    "content_id",
    "open_store",
    "parse_store_spec",
    "relevance_from_cosine",
    "store_info",
]


@dataclass(frozen=True)
class StoreSpec:
    """A parsed store spec (immutable; compared and hashed by value).

    Example:
        .. code-block:: python

            spec = parse_store_spec("chroma+http://127.0.0.1:8000/photos")
            spec.kind, spec.host, spec.port, spec.collection
    """

    #: ``"faiss"``, ``"chroma"``, ``"chroma+http"``, ``"milvus+http"`` or ``"milvus+https"``.
    kind: str
    #: The folder of a FAISS store or an embedded Chroma store.
    path: str = ""
    #: The server of a ``+http`` spec.
    host: str = ""
    #: The server's port.
    port: int = 0
    #: The collection (Chroma, Milvus: the store's ``DEFAULT_COLLECTION`` when the spec has
    #: none); empty for FAISS.
    collection: str = ""


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
    if kind.startswith("chroma"):
        from langchain_image_embeddings.vectorstores.chroma._client import DEFAULT_COLLECTION
    else:
        from langchain_image_embeddings.vectorstores.milvus._schema import DEFAULT_COLLECTION
    if kind == "chroma":
        path, _, collection = rest.partition("#")
        return StoreSpec("chroma", path=path, collection=collection or DEFAULT_COLLECTION)
    if kind == "chroma+http":
        url = urllib.parse.urlsplit("http:" + rest)
        if not url.hostname or not url.port:
            raise ValueError(f"store spec {spec!r}: expected chroma+http://HOST:PORT/COLLECTION")
        collection = url.path.strip("/") or DEFAULT_COLLECTION
        return StoreSpec("chroma+http", host=url.hostname, port=url.port, collection=collection)
    if kind in ("milvus+http", "milvus+https"):
        url = urllib.parse.urlsplit("http:" + rest)
        collection = url.path.strip("/") or DEFAULT_COLLECTION
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
    embeddings: Embeddings | None = None,
    *,
    create: bool = True,
    faiss_index: str | None = None,
    recall_target: float | None = None,
    memory_budget: int | str | None = None,
    expected_rows: int | None = None,
) -> ImageVectorStore:
    """Open (or, with ``create`` and a model, create) the store a spec names.

    With ``embeddings=None`` the model recorded in the store is used. ``faiss_index``,
    ``recall_target`` and ``memory_budget`` go to FAISS stores (see
    :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore`: ``index``,
    ``recall_target``, ``memory_budget``); ``None`` keeps what a saved store records.
    ``expected_rows`` plans a FAISS store's index for the rows it will hold after a bulk
    load (``FAISSImageStore(expected_rows=)``; ``None`` keeps a saved store's plan).

    Raises:
        TypeError: A model given as the spec, or a string as the model (swapped arguments).
        ValueError: A malformed spec.
        StoreError: No such store (and ``create`` is false or no model), unreadable store.
        ModelMismatchError: ``embeddings`` is not the model that wrote the store.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.vectorstores import open_store

            store = open_store("faiss:index")                # model from the manifest
            store.similarity_search_with_score("a red rocket", k=3)
    """
    if not isinstance(spec, str):
        raise TypeError(
            f"open_store: spec= got {type(spec).__name__}, not a store spec string such as "
            "'faiss:index' (the model goes in embeddings=; were the arguments swapped?)"
        )
    if isinstance(embeddings, str):
        raise TypeError(
            f"open_store: embeddings= got the string {embeddings!r}, not a model: the store "
            "spec goes first, the model (or None: the recorded one) second"
        )
    parsed = parse_store_spec(spec)
    if parsed.kind == "faiss":
        from langchain_image_embeddings.vectorstores.faiss._store import FAISSImageStore

        options: dict[str, Any] = {
            "index": faiss_index,
            "recall_target": recall_target,
            "memory_budget": memory_budget,
            "expected_rows": expected_rows,
        }
        if create:
            return FAISSImageStore.open(parsed.path, embeddings, **options)
        return FAISSImageStore.load(parsed.path, embeddings, **options)
    if parsed.kind.startswith("milvus+"):
        from langchain_image_embeddings.vectorstores.milvus._store import MilvusImageStore

        return MilvusImageStore.connect(
            _milvus_uri(parsed),
            embeddings,
            collection_name=parsed.collection,
            token=_milvus_token(),
            create=create,
        )
    from langchain_image_embeddings.vectorstores.chroma._store import ChromaImageStore

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


def store_info(spec: str) -> dict[str, Any]:
    """What a store holds and which model wrote it, without loading the model.

    Raises:
        ValueError: A malformed spec.
        StoreError: No store there.
    """
    parsed = parse_store_spec(spec)
    if parsed.kind == "faiss":
        from langchain_image_embeddings.vectorstores.faiss._files import faiss_info

        return {"store": spec, "kind": "faiss", "path": parsed.path, **faiss_info(parsed.path)}
    where = {"path": parsed.path or f"{parsed.host}:{parsed.port}", "collection": parsed.collection}
    if parsed.kind.startswith("milvus+"):
        from langchain_image_embeddings.vectorstores.milvus._schema import milvus_info

        info = milvus_info(_milvus_uri(parsed), parsed.collection, token=_milvus_token())
        return {"store": spec, "kind": parsed.kind, **where, **info}
    from langchain_image_embeddings.vectorstores.chroma._client import chroma_info

    if parsed.kind == "chroma":
        info = chroma_info(parsed.collection, path=parsed.path)
    else:
        info = chroma_info(parsed.collection, host=parsed.host, port=parsed.port)
    return {"store": spec, "kind": parsed.kind, **where, **info}
