"""What every image store agrees on: ids, scores, vector checks, model records, results.

Pure helpers with no backend import: :class:`~langchain_image_embeddings.vectorstores.base.ImageVectorStore`
builds the shared ``VectorStore`` behaviour on them, the backends use the model-record and
vector helpers, and the shard writer and loader (``scale/``) use the ids and model records.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from langchain_image_embeddings.errors import ImageLoadError, ModelMismatchError, StoreError

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.embeddings import Embeddings

    from langchain_image_embeddings.embeddings import ImageEmbeddings

_ID_NAMESPACE = uuid.UUID("6f1d3a8e-52a4-4c37-9a53-0c7b1f0e8d21")

#: Vectors with an L2 norm at or below this are "zero" and never written.
MIN_NORM = 1e-6

#: The :attr:`ImageLoadError.code` of an image whose vector is NaN/inf or zero.
BAD_VECTOR_CODE = "invalid_vector"

#: Metadata key listing every path/URI whose bytes a record's vector stands for.
SOURCES_KEY = "sources"


def bad_vector_rows(vectors: np.ndarray) -> dict[int, str]:
    """Rows of a 2-D array that must never be written, with the reason (NaN/inf, zero norm)."""
    import numpy as np

    bad: dict[int, str] = {}
    finite = np.isfinite(vectors).all(axis=1)
    with np.errstate(over="ignore"):  # an overflowing norm is not zero: it has a direction
        norms = np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0.0), axis=1)
    for row in np.flatnonzero(~finite):
        bad[int(row)] = "the model produced a vector with NaN/inf values"
    for row in np.flatnonzero(finite & (norms <= MIN_NORM)):
        bad[int(row)] = "the model produced a zero-norm vector (no direction to compare)"
    return bad


def check_vectors(ids: Sequence[str], vectors: np.ndarray, dim: int | None) -> None:
    """Refuse a write of vectors that are not ``(len(ids), dim)``, finite and non-zero.

    Raises:
        StoreError: Naming the offending ids; nothing is written.
    """
    if (
        vectors.ndim != 2
        or len(vectors) != len(ids)
        or (dim is not None and vectors.shape[1] != dim)
    ):
        raise StoreError(
            f"expected {len(ids)} vectors of dimension {dim}, got an array of shape "
            f"{tuple(vectors.shape)}; nothing was written"
        )
    bad = bad_vector_rows(vectors)
    if bad:
        named = ", ".join(f"{ids[r]} ({why})" for r, why in sorted(bad.items())[:5])
        raise StoreError(
            f"{len(bad)} vector(s) with NaN/inf values or zero norm: {named}; nothing was written"
        )


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``float32`` copy with each non-zero row scaled to unit length (cosine = inner product)."""
    import numpy as np

    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.size == 0:
        return matrix
    with np.errstate(over="ignore"):
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # Finite values whose float32 norm overflows (above ~1.8e19) still have a direction:
    # those rows are scaled in float64, instead of being stored with an infinite norm.
    overflowed = ~np.isfinite(norms[:, 0]) & np.isfinite(matrix).all(axis=1)
    norms[~np.isfinite(norms) | (norms <= MIN_NORM)] = 1.0
    unit = np.ascontiguousarray(matrix / norms, dtype=np.float32)
    if overflowed.any():
        wide = matrix[overflowed].astype(np.float64)
        unit[overflowed] = wide / np.linalg.norm(wide, axis=1, keepdims=True)
    return unit


def content_id(sha256: str, model_id: str) -> str:
    """The id of an image's vector: a UUID derived from the file's hash and the model.

    The same bytes embedded by the same model always get the same id, so adding an image
    twice is a no-op; a changed file gets a new id.
    """
    return str(uuid.uuid5(_ID_NAMESPACE, f"{model_id}\n{sha256}"))


def relevance_from_cosine(cosine: float) -> float:
    """Map a cosine similarity in [-1, 1] to a relevance score in [0, 1] (same ranking)."""
    if not math.isfinite(cosine):
        return 0.0
    return min(1.0, max(0.0, (1.0 + cosine) / 2.0))


def record_paths(metadata: dict[str, Any]) -> list[str]:
    """Every path/URI a record stands for: its ``sources`` list, else its ``source``."""
    sources = metadata.get(SOURCES_KEY)
    if isinstance(sources, str):  # written by a store that could only keep strings
        try:
            sources = json.loads(sources)
        except ValueError:
            sources = [sources]
    if isinstance(sources, list) and sources:
        return [str(s) for s in sources]
    source = metadata.get("source")
    return [str(source)] if source is not None else []


def with_paths(metadata: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """``metadata`` with ``sources = paths`` and ``source`` kept if still listed, else the first."""
    meta = dict(metadata)
    meta[SOURCES_KEY] = list(paths)
    if meta.get("source") not in paths and paths:
        meta["source"] = paths[0]
    return meta


def model_record(embeddings: Embeddings) -> dict[str, Any]:
    """What a store records about the model that writes it.

    Image models: spec, dimension and fingerprint (JSON). Any other ``Embeddings``: its
    class name and its ``model``/``model_name`` if it has one, so that a store is not
    silently reopened with a different kind of model.
    """
    image = image_embeddings_of(embeddings)
    if image is None:
        name = type(embeddings).__qualname__
        for attr in ("model", "model_name"):  # e.g. OpenAIEmbeddings.model
            value = getattr(embeddings, attr, None)
            if isinstance(value, str) and value:
                return {"model": f"{name}({value})"}
        return {"model": name}
    fingerprint = image.encoder.fingerprint()
    return {
        "model": image.model_id,
        "dim": int(image.dim),
        "fingerprint": json.dumps(fingerprint, sort_keys=True, default=str),
    }


def model_difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first of ``model``, ``dim``, ``fingerprint`` on which two model records differ."""
    for key in ("model", "dim", "fingerprint"):
        if key in stored and key in current and str(stored[key]) != str(current[key]):
            return key
    return None


def model_record_with_dim(record: dict[str, Any], dim: int | None) -> dict[str, Any]:
    """``record`` with the vectors' dimension added when it names none and ``dim`` is known
    (a text model's dimension is known only once its first vectors are written)."""
    if "dim" in record or dim is None:
        return dict(record)
    return {**record, "dim": int(dim)}


def check_model(stored: dict[str, Any], embeddings: Embeddings, where: str) -> None:
    """Raise :class:`ModelMismatchError` unless ``embeddings`` is the model ``stored`` names."""
    check_model_record(stored, model_record(embeddings), where)


def check_model_record(stored: dict[str, Any], current: dict[str, Any], where: str) -> None:
    """Raise :class:`ModelMismatchError` unless the model records ``stored`` (what ``where``
    records) and ``current`` (the model opening it) name the same model.

    Example:
        .. code-block:: python

            check_model_record(manifest["model"], model_record(embeddings), "FAISS store index")
    """
    key = model_difference(stored, current)
    if key == "fingerprint" and str(stored.get("model")) == str(current.get("model")):
        # Same name, other vectors: a model retrained into the same folder, other weights
        # or options behind the same spec. Naming the model twice would explain nothing.
        raise ModelMismatchError(
            f"{where} was written by {stored.get('model')!r} with other weights or options "
            "(its fingerprint differs: retrained, or other model_kwargs); mixing them would "
            "mix vector spaces. Open it with the model as it was, or index into a new store."
        )
    if key is not None:
        raise ModelMismatchError(
            f"{where} was written by model {stored.get('model')!r} ({stored.get('dim')}-d); "
            f"opening it with {current.get('model')!r} ({current.get('dim')}-d) would mix vector "
            f"spaces ({key} differs). Open it with the same model, or index into a new store."
        )


def refuse_swapped_arguments(
    owner: str, embeddings: object, path: object = None, *, path_name: str = "path"
) -> None:
    """Refuse a path where the model goes, or a model where the path goes.

    The stores take ``(embeddings, path)`` in their constructors and ``(path, embeddings)``
    in ``open`` / ``load`` / ``persistent``: both are keyword arguments everywhere, and a
    swapped pair is named here rather than failing somewhere deeper.

    Raises:
        TypeError: Saying which argument got what.

    Example:
        .. code-block:: python

            refuse_swapped_arguments("FAISSImageStore", embeddings, path)
    """
    from langchain_core.embeddings import Embeddings

    if isinstance(embeddings, (str, os.PathLike)):
        raise TypeError(
            f"{owner}: embeddings= got the path {os.fspath(embeddings)!r}, not a model: the "
            f"model goes in embeddings=, the store's location in {path_name}= (were the "
            "two arguments swapped? pass them by keyword)"
        )
    if isinstance(path, Embeddings):
        raise TypeError(
            f"{owner}: {path_name}= got the model {type(path).__name__}, not a path: the "
            f"store's location goes in {path_name}=, the model in embeddings= (were the "
            "two arguments swapped? pass them by keyword)"
        )


def recorded_image_model(stored: dict[str, Any], where: str) -> ImageEmbeddings:
    """The image model a store records, for a store opened without one.

    Args:
        stored: The store's model record (``model``, ``fingerprint``, ...).
        where: The store, as messages name it (``Chroma collection 'photos'``).

    Raises:
        StoreError: The record names no image model (a text store, or none at all).

    Example:
        .. code-block:: python

            recorded_image_model(backend.read_model_record(), backend.where)
    """
    if "fingerprint" not in stored:
        raise StoreError(
            f"{where} records no image model ({stored.get('model')!r}): pass the embeddings "
            "to open it"
        )
    from langchain_image_embeddings.embeddings import ImageEmbeddings

    return ImageEmbeddings(str(stored["model"]))


def image_embeddings_of(embeddings: Embeddings | None) -> ImageEmbeddings | None:
    """The :class:`ImageEmbeddings` behind ``embeddings`` (itself or a document view), if any."""
    if embeddings is None:
        return None
    from langchain_image_embeddings.document_embeddings import ImageDocumentEmbeddings
    from langchain_image_embeddings.embeddings import ImageEmbeddings

    if isinstance(embeddings, ImageEmbeddings):
        return embeddings
    if isinstance(embeddings, ImageDocumentEmbeddings):
        return embeddings.image_embeddings
    return None


@dataclass
class AddResult:
    """Outcome of ``add_images``.

    Attributes:
        added: Ids of vectors written (newly embedded images).
        skipped: Ids already in the store (same bytes, same model): nothing embedded.
        replaced: Ids removed because their ``source`` now holds different bytes.
        duplicates: Inputs whose bytes equal another path's: ``{input: that path}``. They
            share that record's vector and are listed in its ``sources`` metadata.
        failures: Images that could not be read or embedded.
        committed: False when ``all_or_nothing`` found failures and wrote nothing.
        input_ids: The content id of each readable input, in input order.

    Example:
        .. code-block:: python

            result = store.add_images(["cat.jpg", "dog.jpg"])
            print(len(result.added), len(result.skipped), [e.code for e in result.failures])
    """

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)
    failures: list[ImageLoadError] = field(default_factory=list)
    committed: bool = True
    input_ids: list[str] = field(default_factory=list, repr=False)


@dataclass
class PendingAdd:
    """Embedded but not yet written images (from ``prepare_add``).

    Attributes:
        ids: Content ids of the vectors to write.
        vectors: ``float32`` array, one finite, non-zero row per id.
        documents: The image documents, in the same order.
        relinked: Existing records whose ``sources`` gain paths: ``{id: paths}``.
        moved: Paths that leave the record they were in: ``{path: old id}``.
        result: Skipped ids, duplicates and failures so far (``added``/``replaced`` on commit).

    Example:
        .. code-block:: python

            pending = store.prepare_add(["cat.jpg", "dog.jpg"])   # embedded, nothing written
            if not pending.result.failures:
                store.commit_add(pending)
    """

    ids: list[str]
    vectors: np.ndarray
    documents: list[Document]
    relinked: dict[str, list[str]]
    moved: dict[str, str]
    result: AddResult
