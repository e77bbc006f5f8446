"""Keeping backends' stray root-logger lines out of the command's output."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

__all__ = ["no_stray_root_logging"]


class _RejectRecords(logging.Filter):
    """A logging filter that rejects every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _LastResort(logging.StreamHandler):  # type: ignore[type-arg]
    """What :data:`logging.lastResort` does, as a root handler: WARNING and above to stderr,
    only for records that no other handler on the way to the root takes."""

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)

    def handle(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if logger.handlers:
                return False  # printed (or not) by that handler, as without this one
            logger = logger.parent
        self.setStream(sys.stderr)
        return super().handle(record)


@contextlib.contextmanager
def no_stray_root_logging() -> Iterator[None]:
    """Drop records logged on the root logger itself while a command runs.

    open_clip reports a failed weights load with ``logging.error(...)`` (the root logger)
    before raising; the CLI reports that error once, in its own ``error:`` line, so the
    stray ``ERROR:root:...`` line is dropped. Where the root logger has no handler, a
    stand-in for :data:`logging.lastResort` keeps ``logging.error`` from installing a
    ``basicConfig`` handler, so the warnings of other loggers reach stderr as before.
    """
    root = logging.getLogger()
    drop = _RejectRecords()  # a logger's filters see only the records logged on it
    root.addFilter(drop)
    stand_in = _LastResort() if not root.handlers else None
    if stand_in is not None:
        root.addHandler(stand_in)
    try:
        yield
    finally:
        root.removeFilter(drop)
        if stand_in is not None:
            root.removeHandler(stand_in)
