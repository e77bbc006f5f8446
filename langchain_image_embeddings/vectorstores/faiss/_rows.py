"""The raw vectors of a FAISS image store: saved segments memory-mapped, new rows in RAM.

A store's rows are numbered through its base segment, then its later segments, then the
rows added since the last save. :class:`RowVectors` keeps each saved segment as a
:class:`Segment`: a read-only ``np.load(..., mmap_mode="r")`` map of its ``.npy`` file plus a
descriptor of the same file. Only the unsaved rows are held in memory, so an IVF-PQ store of
100 M vectors needs the index's codes in RAM, not 100 M x dim x 4 bytes of vectors. The raw
rows are read only where they are needed:

* scattered rows (rescoring an approximate index's candidates, the vectors of given ids for
  MMR, a filter's few matches) with positional reads (``os.pread``) of just those rows: a
  touch of a mapped page would make the kernel map up to 64 KiB around it ("fault-around")
  plus its readahead, so a few thousand scattered rows would put the whole file in the
  process's resident set;
* sequential blocks (exact search over every row, index builds, compaction) from the map.

Saved segment files are never modified (a save writes new names), so a map and a
descriptor stay valid while a later save or compaction of the same folder deletes the file:
on POSIX the data lives until both are dropped. A store closes its segments before it
deletes their files (Windows refuses to delete an open or mapped file; there the file is
left and deleted by a later save).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_image_embeddings.errors import StoreError

if TYPE_CHECKING:
    import numpy as np

#: Rows scored per block by exact search (64 MiB of float32 at dimension 512).
EXACT_BLOCK_BYTES = 64 << 20


class Segment:
    """A saved segment file: its ``float32`` rows memory-mapped, and read row by row.

    Example:
        .. code-block:: python

            segment = Segment(Path("index/vectors-00000002-1a2b3c4d.npy"), 512)
            segment.rows[:1000]                  # a block, from the map
            segment.read(np.array([7, 90210]))   # two rows, read with pread
            segment.close()

    Raises:
        StoreError: Not a 2-d C-ordered ``float32`` array (of ``dim`` columns when given).
    """

    def __init__(self, file: Path, dim: int | None) -> None:
        import numpy as np

        self.name = file.name
        try:
            rows: np.ndarray = np.load(file, mmap_mode="r", allow_pickle=False)
            fd = os.open(file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"FAISS store {file.parent}: unreadable data {file.name}: {exc}"
            ) from exc
        self._close_fd = weakref.finalize(self, os.close, fd)
        if (
            rows.ndim != 2
            or rows.dtype != np.float32
            or not rows.flags.c_contiguous
            or (dim is not None and rows.shape[1] != dim)
        ):
            self.close()
            raise StoreError(
                f"FAISS store {file.parent}: {file.name} holds {rows.dtype} {rows.shape} "
                f"vectors, expected float32 rows of dimension {dim}"
            )
        self.rows = rows
        self._fd = fd
        self._offset = int(getattr(rows, "offset", 0))

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, local: np.ndarray) -> np.ndarray:
        """Rows ``local`` (sorted, unique row numbers of this segment), read with ``preadv``."""
        import numpy as np

        dim = int(self.rows.shape[1])
        if not hasattr(os, "preadv") or not self._close_fd.alive:  # pragma: no cover - Windows
            return np.array(self.rows[local])
        out = np.empty((len(local), dim), np.float32)
        if not len(local):
            return out
        # One read per run of consecutive rows, straight into ``out``: the run bounds come
        # from numpy and the loop touches only Python ints (a numpy scalar per row, plus
        # a frombuffer copy, cost more than the system call on a rescoring's ~100 rows).
        breaks = (np.flatnonzero(np.diff(local) != 1) + 1).tolist()
        starts, ends = [0, *breaks], [*breaks, len(local)]
        size, fd, offset = 4 * dim, self._fd, self._offset
        buffer = out.data.cast("B")
        for a, b, row in zip(starts, ends, local[starts].tolist(), strict=True):
            if os.preadv(fd, [buffer[a * size : b * size]], offset + size * row) != size * (b - a):
                raise StoreError(f"{self.name}: short read (file truncated?)")
        return out

    def close(self) -> None:
        """Close the descriptor (the map goes with the last reference to :attr:`rows`)."""
        self._close_fd()


def map_segment(file: Path, dim: int | None) -> Segment:
    """A :class:`Segment` of ``file`` (checked: ``float32`` rows of dimension ``dim``)."""
    return Segment(file, dim)


class RowVectors:
    """Every row's unit vector: read-only parts (saved segments), then unsaved rows in RAM.

    Example:
        .. code-block:: python

            import numpy as np

            rows = RowVectors(4)
            rows.append(np.eye(4, dtype=np.float32)[:2])
            rows.take(np.array([1, 0]))          # rows 1 and 0, copied
            rows.pending_rows                    # 2: not saved yet, held in RAM
    """

    def __init__(self, dim: int | None) -> None:
        self.dim = dim
        self._parts: list[np.ndarray] = []  # mapped segments (or, in memory, arrays)
        self._segments: list[Segment | None] = []  # each part's segment file, if saved
        self._starts: list[int] = []  # first row of each part
        self._saved = 0  # rows held by the parts
        self._pending: list[np.ndarray] = []  # unsaved rows, in blocks as appended
        self._pending_rows = 0
        self._merged: np.ndarray | None = None  # the pending blocks as one array (cache)

    def __len__(self) -> int:
        return self._saved + self._pending_rows

    @property
    def pending_rows(self) -> int:
        """Rows held in RAM: added since the last save (or never saved)."""
        return self._pending_rows

    @property
    def mapped_files(self) -> list[str]:
        """Names of the segment files this object maps."""
        return [s.name for s in self._segments if s is not None]

    def _push(self, part: np.ndarray | Segment) -> None:
        segment = part if isinstance(part, Segment) else None
        rows = part.rows if isinstance(part, Segment) else part
        if len(rows):  # an empty part (an empty store's base) says nothing of the dimension
            self._check_dim(int(rows.shape[1]))
            self._parts.append(rows)
            self._segments.append(segment)
            self._starts.append(self._saved)
            self._saved += len(rows)
        elif segment is not None:
            segment.close()

    def add_part(self, part: np.ndarray | Segment) -> None:
        """Append a saved segment (or an array used as is) after the current parts.

        Raises:
            StoreError: Unsaved rows exist (parts must come first) or the dimension differs.
        """
        if self._pending_rows:
            raise StoreError("segments are mapped before any unsaved row")  # pragma: no cover
        self._push(part)

    def append(self, rows: np.ndarray) -> None:
        """Append unsaved rows (copied into RAM)."""
        import numpy as np

        if len(rows):
            self._check_dim(int(rows.shape[1]))
            self._pending.append(np.array(rows, dtype=np.float32, order="C"))
            self._pending_rows += len(rows)
            self._merged = None

    def saved_up_to(self, segment: Segment | None) -> None:
        """Every pending row was just written; ``segment`` (that file) replaces them."""
        if segment is not None and len(segment) != self._pending_rows:
            raise StoreError("a saved segment does not match the unsaved rows")  # pragma: no cover
        self._pending, self._pending_rows, self._merged = [], 0, None
        if segment is not None:
            self._push(segment)

    def replace_all(self, segment: Segment | np.ndarray) -> None:
        """Close every segment, drop every pending row; ``segment`` becomes row 0 on."""
        self.close()
        self._pending, self._pending_rows, self._merged = [], 0, None
        self._push(segment)

    def close(self) -> None:
        """Close the segment files and drop the maps (this object then holds no rows)."""
        for segment in self._segments:
            if segment is not None:
                segment.close()
        self._parts, self._segments, self._starts, self._saved = [], [], [], 0

    def _check_dim(self, dim: int) -> None:
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            raise StoreError(f"{dim}-d vectors in a store of {self.dim}-d vectors")

    def _pending_array(self) -> np.ndarray:
        import numpy as np

        if self._merged is None:
            if len(self._pending) == 1:
                self._merged = self._pending[0]
            elif self._pending:
                self._merged = np.concatenate(self._pending)
                self._pending = [self._merged]
            else:
                self._merged = np.zeros((0, self.dim or 0), np.float32)
        return self._merged

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, rows)`` views covering rows ``start:stop`` in order, each a part (or
        the pending rows) cut to at most :data:`EXACT_BLOCK_BYTES`."""
        stop = len(self) if stop is None else min(stop, len(self))
        step = max(1, EXACT_BLOCK_BYTES // (4 * max(1, self.dim or 1)))
        pieces = [*zip(self._starts, self._parts, strict=True)]
        if self._pending_rows:
            pieces.append((self._saved, self._pending_array()))
        for first, part in pieces:
            lo, hi = max(start, first), min(stop, first + len(part))
            for s in range(lo, hi, step):
                yield s, part[s - first : min(hi, s + step) - first]

    def slice(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` copied into one array."""
        import numpy as np

        parts = [np.asarray(b) for _, b in self.blocks(start, stop)]
        if not parts:
            return np.zeros((0, self.dim or 0), np.float32)
        return np.ascontiguousarray(np.concatenate(parts) if len(parts) > 1 else parts[0].copy())

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of row numbers ``rows`` (any order, repeats allowed), copied."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.dim or 0), np.float32)
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"row {int(rows.max())} out of range ({len(self)} rows)")
        pieces = [*zip(self._starts, self._parts, self._segments, strict=True)]
        if self._pending_rows:
            pieces.append((self._saved, self._pending_array(), None))
        for first, part, segment in pieces:
            mask = (rows >= first) & (rows < first + len(part))
            if mask.any():
                where = np.flatnonzero(mask)
                local, inverse = np.unique(rows[where] - first, return_inverse=True)
                got = part[local] if segment is None else segment.read(local)
                out[where] = got[inverse.reshape(-1)]
        return out

    def exact_search(
        self,
        query: np.ndarray,
        k: int,
        *,
        dead: np.ndarray | None = None,
        subset: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of highest inner product with ``query``: (rows, scores), best first.

        Args:
            query: One unit vector.
            k: Rows wanted.
            dead: Boolean mask over all rows; ``True`` rows are never returned.
            subset: Only these row numbers are scored (a filter's matches).
        """
        import numpy as np

        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        rows_l: list[np.ndarray] = []
        scores_l: list[np.ndarray] = []
        if subset is not None:
            sub = np.asarray(subset, dtype=np.int64)
            if dead is not None:
                sub = sub[~dead[sub]]
            candidates = [(sub, self.take(sub) @ q)]
        else:
            candidates = []
            for first, block in self.blocks():
                scores = np.asarray(block) @ q
                ids = np.arange(first, first + len(block), dtype=np.int64)
                if dead is not None:
                    live = ~dead[first : first + len(block)]
                    ids, scores = ids[live], scores[live]
                candidates.append((ids, scores))
        for ids, scores in candidates:
            if len(ids) > k:  # keep each block's best k only
                part = np.argpartition(-scores, k - 1)[:k]
                ids, scores = ids[part], scores[part]
            rows_l.append(ids)
            scores_l.append(scores)
        if not rows_l:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows = np.concatenate(rows_l)
        scores = np.concatenate(scores_l).astype(np.float32, copy=False)
        order = np.lexsort((rows, -scores))[:k]  # best first; ties: lower row first
        return rows[order], scores[order]
