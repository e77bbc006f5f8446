"""The optional dependencies of the scale package, with the ``pip install`` to run."""

from __future__ import annotations

from types import ModuleType

from langchain_image_embeddings.errors import MissingDependencyError


def require_pyarrow() -> ModuleType:
    """``pyarrow`` or :class:`MissingDependencyError` naming the extra."""
    try:
        import pyarrow
    except ImportError as exc:
        raise MissingDependencyError(
            "Parquet shards need pyarrow: pip install 'langchain-image-embeddings[parquet]'"
        ) from exc
    module: ModuleType = pyarrow
    return module


def require_ray() -> ModuleType:
    """``ray`` (with Ray Data) or :class:`MissingDependencyError` naming the extra."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError(
            "the Ray engine needs Ray Data: pip install 'langchain-image-embeddings[ray]'"
        ) from exc
    return ray
