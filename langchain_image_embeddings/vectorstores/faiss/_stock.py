"""Converting a stock LangChain FAISS folder (``index.faiss`` + ``index.pkl``) to a FAISS image store.

The reading behind :meth:`FAISSImageStore.import_langchain_faiss
<langchain_image_embeddings.vectorstores.FAISSImageStore.import_langchain_faiss>`, which
documents the call and writes the rows; kept apart because only this path unpickles anything.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.errors import StoreError
from langchain_image_embeddings.vectorstores._records import (
    bad_vector_rows,
    content_id,
    model_record,
)

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.embeddings import Embeddings


def read_stock_folder(
    folder: str | os.PathLike[str], embeddings: Embeddings, index_name: str
) -> Any:
    """The stock ``FAISS`` object of ``folder`` (its pickle is unpickled: trusted folders only).

    Raises:
        StoreError: The folder cannot be read.
    """
    require("faiss", "faiss-cpu")
    require("langchain_community", "langchain-community")
    from langchain_community.vectorstores import FAISS

    try:
        return FAISS.load_local(
            str(folder),
            embeddings,  # only stored by the stock object: nothing is embedded here
            index_name=index_name,
            allow_dangerous_deserialization=True,
        )
    except Exception as exc:
        raise StoreError(f"cannot read the LangChain FAISS folder {folder}: {exc}") from exc


def stock_rows(
    folder: str | os.PathLike[str], stock: Any, model_id: str
) -> tuple[np.ndarray, list[str], list[Document], list[int], list[int]]:
    """Unit vectors, new ids, documents and kept row numbers of a stock store; bad rows apart.

    Returns:
        ``(vectors, ids, documents, rows, skipped)``: ``vectors`` holds every stock row
        (normalised); ``rows`` are the ones kept, in the order of ``ids``/``documents``;
        ``skipped`` the NaN/inf or zero rows left out.
    """
    import numpy as np

    n = int(stock.index.ntotal)
    vectors = (
        np.asarray(stock.index.reconstruct_n(0, n), dtype=np.float32)
        if n
        else np.zeros((0, int(stock.index.d)), np.float32)
    )
    bad = bad_vector_rows(vectors) if n else {}
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    vectors = vectors / norms
    ids: list[str] = []
    docs: list[Document] = []
    rows: list[int] = []
    seen: set[str] = set()
    for row in range(n):
        if row in bad:
            continue
        stock_id = stock.index_to_docstore_id[row]
        doc = stock.docstore.search(stock_id)
        if not isinstance(doc, Document):
            raise StoreError(f"{folder}: row {row} has no document ({stock_id!r})")
        sha = doc.metadata.get("sha256")
        new_id = content_id(str(sha), model_id) if sha else str(stock_id)
        if new_id in seen:
            continue
        seen.add(new_id)
        ids.append(new_id)
        rows.append(row)
        docs.append(Document(id=new_id, page_content=doc.page_content, metadata=dict(doc.metadata)))
    return vectors, ids, docs, rows, sorted(bad)


def import_stock_folder(
    folder: str | os.PathLike[str],
    embeddings: Embeddings,
    *,
    index_name: str,
    dim: int | None,
) -> tuple[list[str], np.ndarray, list[Document], list[int]]:
    """The rows of the stock store in ``folder``, ready to write into a FAISS image store.

    Args:
        folder: The stock store's folder.
        embeddings: The model that made its vectors (its record names the content ids).
        index_name: The stock store's ``index_name``.
        dim: The dimension the new store expects (``None``: any).

    Returns:
        ``(ids, vectors, documents, skipped)``: unit vectors of the kept rows with their new
        ids and documents, and the NaN/inf or zero rows left out.

    Raises:
        StoreError: The folder cannot be read, or holds vectors of another dimension.
    """
    stock = read_stock_folder(folder, embeddings, index_name)
    if dim is not None and int(stock.index.d) != dim:
        raise StoreError(
            f"{folder} holds {stock.index.d}-d vectors; {model_record(embeddings)['model']} "
            f"makes {dim}-d ones"
        )
    model_id = str(model_record(embeddings)["model"])
    vectors, ids, docs, rows, skipped = stock_rows(folder, stock, model_id)
    return ids, vectors[rows], docs, skipped
