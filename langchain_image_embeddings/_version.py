"""The package's version, on the ground floor so that any layer can report it."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
