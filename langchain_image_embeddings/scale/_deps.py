"""The optional dependencies of the scale package (see :func:`~langchain_image_embeddings._optional.require`)."""

from __future__ import annotations

from types import ModuleType

from langchain_image_embeddings._optional import require


def require_pyarrow() -> ModuleType:
    """``pyarrow`` or :class:`MissingDependencyError` naming the ``[parquet]`` extra."""
    return require("pyarrow", "pyarrow")


def require_ray() -> ModuleType:
    """``ray`` with Ray Data, or :class:`MissingDependencyError` naming the ``[ray]`` extra."""
    require("ray.data", "'ray[data]'")
    return require("ray", "'ray[data]'")
