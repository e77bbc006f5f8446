"""Lazy public faces: a package names what it exports, and each name is imported on first use.

A package's ``__init__`` that imported its classes eagerly would import torch, FAISS or
FastAPI with it; with this helper ``import langchain_image_embeddings`` stays cheap and
``from langchain_image_embeddings import ImageEmbeddings`` still works (PEP 562).

Example:
    .. code-block:: python

        # in mypackage/__init__.py
        from langchain_image_embeddings._exports import lazy_exports

        __all__ = ["fit"]
        __getattr__, __dir__ = lazy_exports(__name__, {"fit": ".loop"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package with lazy exports.

    Args:
        package: The package's ``__name__``.
        exports: Each exported name and the module that defines it, absolute
            (``"langchain_image_embeddings.embeddings"``) or relative to ``package``
            (``".embeddings"``, ``"..encoders.local"``), as :func:`importlib.import_module`
            takes it.

    Returns:
        ``(__getattr__, __dir__)``: the first imports a name's module on first access and
        keeps the value in the package's namespace (later accesses are plain lookups); the
        second lists the package's names with the lazy ones.

    Example:
        .. code-block:: python

            __getattr__, __dir__ = lazy_exports(__name__, {"ImageEmbeddings": ".embeddings"})
    """
    table = dict(exports)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
