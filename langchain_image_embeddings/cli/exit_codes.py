"""Exit codes of the ``imgemb`` commands (``imgemb finetune`` included), defined once."""

from __future__ import annotations

from typing import Final

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INPUT_ERRORS",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_STORE",
    "EXIT_USAGE",
]

EXIT_OK: Final = 0
"""Success."""
EXIT_INPUT_ERRORS: Final = 1
"""Some inputs failed (listed); everything else was done."""
EXIT_USAGE: Final = 2
"""Usage error: bad arguments, malformed store spec, missing folder, nothing to index."""
EXIT_MODEL: Final = 3
"""The model could not be loaded, or cannot do what was asked."""
EXIT_ERROR: Final = 4
"""Any other error."""
EXIT_STORE: Final = 5
"""Store error: missing, corrupt, unreachable, locked, or written by another model."""
EXIT_BROKEN_PIPE: Final = 141
"""The reader of the output left (``imgemb ... | head``): 128 + SIGPIPE, what a shell reports."""
