"""The ids of a FAISS image store's rows: row -> id and id -> row, compact for saved rows.

A store numbers its rows 0..n-1 (saved segments first, then the rows added since); each row
has an id, or none once deleted or replaced. At 10 M rows a Python ``list`` of the ids plus
a ``dict`` from id to row took 187 B a row with 64-hex-digit content ids, the store's
largest heap cost once documents moved to disk. :class:`RowIds` keeps the same two maps in
two parts:

* **frozen rows** (everything up to the last :meth:`RowIds.freeze`, which the store calls
  after each save and load): the ids packed into immutable blocks of bytes (a hex id of
  even length as its raw bytes, half its length; ids of one length back to back; others
  UTF-8 with offsets), a ``bool`` array saying which rows still have their id, and for
  lookups a sorted array of 64-bit id hashes with the row of each (``np.searchsorted``,
  the full id compared on a hash hit);
* **the tail**: rows added since, and ids whose row changed, in a small ``list`` and
  ``dict`` (-1 in the dict: the id was deleted, whatever the frozen part says).

Hashes are Python's ``hash()`` of the id (cached on the ``str``, salted per process): they
live only in this process's memory, never in a file. Any ``str`` is an id (unicode, NUL,
lone surrogates).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: Rows per frozen block (a block's ids are encoded together, in one of three ways).
BLOCK_ROWS = 1 << 16

_HEX, _FIXED, _VARIABLE = "hex", "fixed", "variable"
#: The ids' hash: Python's own (cached on each ``str``); a test swaps in a colliding one.
_hash: Callable[[str], int] = hash


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class _Block:
    """Consecutive frozen rows' ids packed into one ``bytes`` (a row without an id: empty)."""

    __slots__ = ("codec", "data", "offsets", "width")

    def __init__(self, ids: Sequence[str | None]) -> None:
        import numpy as np

        self.offsets: np.ndarray | None = None
        present = [i for i in ids if i is not None]
        lengths = {len(i) for i in present}
        if len(lengths) == 1 and not (length := lengths.pop()) % 2:
            filler = "0" * length
            joined = "".join(filler if i is None else i for i in ids)
            try:
                packed = bytes.fromhex(joined)
            except ValueError:
                packed = None
            # fromhex skips spaces and reads capitals: only ids its .hex() gives back qualify
            if packed is not None and packed.hex() == joined:
                self.codec, self.data, self.width = _HEX, packed, length // 2
                return
        encoded = [b"" if i is None else _encode(i) for i in ids]
        widths = {len(e) for e, i in zip(encoded, ids, strict=True) if i is not None}
        if len(widths) == 1:
            self.width = widths.pop()
            self.codec = _FIXED
            self.data = b"".join(e or b"\0" * self.width for e in encoded)
            return
        self.codec, self.width = _VARIABLE, 0
        self.data = b"".join(encoded)
        ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        dtype = np.uint32 if len(self.data) < 1 << 32 else np.int64
        self.offsets = np.concatenate([np.zeros(1, dtype), ends.astype(dtype)])

    def __getitem__(self, local: int) -> str:
        if self.offsets is not None:
            return _decode(self.data[self.offsets[local] : self.offsets[local + 1]])
        item = self.data[local * self.width : (local + 1) * self.width]
        return item.hex() if self.codec == _HEX else _decode(item)

    def nbytes(self) -> int:
        """Bytes held (the packed ids and their offsets)."""
        return len(self.data) + (0 if self.offsets is None else int(self.offsets.nbytes))


class RowIds:
    """Row -> id and id -> row of a FAISS store's rows (see the module for the layout).

    Behaves like the ``list`` (row -> id, ``None`` once deleted) plus ``dict`` (id -> row,
    a later row of an id replacing the earlier) it replaces: :meth:`append` / :meth:`extend`
    add rows, :meth:`drop` marks one deleted, :meth:`freeze` packs the rows added since the
    last freeze, :meth:`add_saved` appends a saved segment's ids packed directly and
    :meth:`select` keeps some rows, renumbered (a compaction).

    Example:
        .. code-block:: python

            ids = RowIds()
            ids.extend(["a", "b", "c"])
            ids.freeze()                  # packed: what a saved store holds
            ids.drop(1)                   # "b"
            ids[1], ids.row("c"), "b" in ids, ids.count   # None, 2, False, 2
            ids.rows_of(["c", "x"])       # [2, None]
    """

    def __init__(self) -> None:
        import numpy as np

        self._blocks: list[_Block] = []
        self._starts: list[int] = []  # first row of each block
        self._frozen = 0  # rows in the blocks
        # 1 where a frozen row still has its id: a bytearray, cheap to read one row of and
        # to grow; numpy reads a copy (_live_array)
        self._live = bytearray()
        self._hashes = np.zeros(0, np.int64)  # sorted: hashes of the frozen ids mapped
        self._slots = np.zeros(0, np.uint32)  # the row of each hash
        self._tail: list[str | None] = []  # rows from self._frozen on
        self._tail_map: dict[str, int] = {}  # id -> row since the freeze (-1: deleted)
        self._count = 0  # ids mapped to a row
        self._dead = 0  # rows without an id

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        """Every row, with or without an id."""
        return self._frozen + len(self._tail)

    @property
    def count(self) -> int:
        """Ids that have a row (the store's live rows)."""
        return self._count

    @property
    def dead_count(self) -> int:
        """Rows without an id (deleted, replaced, placeholders)."""
        return self._dead

    def __getitem__(self, row: int) -> str | None:
        """The id of ``row`` (``None``: deleted)."""
        if row >= self._frozen:
            return self._tail[row - self._frozen]
        if row < 0:
            raise IndexError(f"row {row} out of range")
        return self._frozen_id(row) if self._live[row] else None

    def ids_of(self, rows: Iterable[int]) -> list[str | None]:
        """The ids of these rows, in order (``None``: deleted)."""
        return [self[int(r)] for r in rows]

    def is_live(self, row: int) -> bool:
        """Whether ``row`` still has its id."""
        if row >= self._frozen:
            return self._tail[row - self._frozen] is not None
        return self._live[row] == 1

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, str) and self.row(rid) is not None

    def row(self, rid: str) -> int | None:
        """The row of id ``rid`` (``None``: not present)."""
        found = self._tail_map.get(rid)
        if found is not None:
            return found if found >= 0 else None
        return self._frozen_row(rid)

    def rows_of(self, ids: Sequence[str]) -> list[int | None]:
        """The row of each id (``None``: not present), the frozen ones found in one search."""
        out: list[int | None] = [None] * len(ids)
        frozen: list[int] = []
        for k, rid in enumerate(ids):
            found = self._tail_map.get(rid)
            if found is None:
                frozen.append(k)
            elif found >= 0:
                out[k] = found
        if frozen and len(self._hashes):
            for k, row in zip(frozen, self._frozen_rows([ids[k] for k in frozen]), strict=True):
                out[k] = row
        return out

    def live_rows(self) -> np.ndarray:
        """The rows that have an id, ascending (``int64``)."""
        import numpy as np

        tail = [r for r, rid in enumerate(self._tail, self._frozen) if rid is not None]
        return np.concatenate([np.flatnonzero(self._live_array()), np.asarray(tail, np.int64)])

    def dead_rows(self) -> np.ndarray:
        """The rows without an id, ascending (``int64``)."""
        import numpy as np

        tail = [r for r, rid in enumerate(self._tail, self._frozen) if rid is None]
        dead = np.flatnonzero(~self._live_array())
        return np.concatenate([dead, np.asarray(tail, np.int64)])

    def dead_mask(self) -> np.ndarray:
        """``True`` for every row without an id."""
        import numpy as np

        tail = np.fromiter((rid is None for rid in self._tail), bool, len(self._tail))
        return np.concatenate([~self._live_array(), tail])

    def nbytes(self) -> int:
        """Bytes held by the frozen part's arrays (the tail's Python objects not counted)."""
        arrays = int(self._hashes.nbytes + self._slots.nbytes)
        return sum(b.nbytes() for b in self._blocks) + len(self._live) + arrays

    # -- changing ------------------------------------------------------------------------
    def append(self, rid: str | None) -> None:
        """Add a row with this id (it moves the id off an earlier row; ``None``: no id)."""
        self.extend([rid])

    def extend(self, ids: Sequence[str | None]) -> None:
        """Add a row for each id, in order (:meth:`append` for each)."""
        before = iter(self._frozen_rows([rid for rid in ids if rid is not None]))
        for rid in ids:
            row = len(self)
            self._tail.append(rid)
            if rid is None:
                self._dead += 1
                continue
            frozen = next(before)
            held = self._tail_map.get(rid)
            present = frozen is not None if held is None else held >= 0
            if not present:
                self._count += 1  # a new id, not a row replacing its earlier one
            self._tail_map[rid] = row

    def drop(self, row: int) -> str | None:
        """Mark ``row`` deleted; returns its id if the id pointed to this row (it is gone
        now), else ``None`` (no id, or its id has a later row)."""
        rid = self[row]
        if rid is None:
            return None
        removed = self.row(rid) == row
        if removed:
            self._count -= 1
            if row >= self._frozen:
                # an older frozen row still holding the id must not show through
                if self._frozen_row(rid) is None:
                    del self._tail_map[rid]
                else:
                    self._tail_map[rid] = -1
        if row >= self._frozen:
            self._tail[row - self._frozen] = None
        else:
            self._live[row] = 0
        self._dead += 1
        return rid if removed else None

    def freeze(self) -> None:
        """Pack the rows added since the last freeze (and fold the tail's id changes in)."""
        import numpy as np

        if not self._tail and not self._tail_map:
            return
        tail, changes = self._tail, self._tail_map
        self._tail, self._tail_map = [], {}
        self._add_blocks(tail)
        moved = [(rid, row) for rid, row in changes.items() if row >= 0]
        self._merge(
            np.fromiter((_hash(rid) for rid, _ in moved), np.int64, len(moved)),
            np.fromiter((row for _, row in moved), np.int64, len(moved)),
            deleted=[rid for rid, row in changes.items() if row < 0],
        )

    def add_saved(self, ids: Iterable[str | None]) -> None:
        """Append a saved segment's ids (``None``: a placeholder row), packed as they
        stream in: the segment's ids are never all held as Python strings."""
        import numpy as np

        self.freeze()
        hashes: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        for block in _batches(ids, BLOCK_ROWS):
            named = [(r, i) for r, i in enumerate(block, len(self)) if i is not None]
            hashes.append(np.fromiter((_hash(i) for _, i in named), np.int64, len(named)))
            rows.append(np.fromiter((r for r, _ in named), np.int64, len(named)))
            self._dead += self._add_blocks(block)
        if hashes:
            self._merge(np.concatenate(hashes), np.concatenate(rows), deleted=[])

    def select(self, rows: np.ndarray) -> RowIds:
        """A new :class:`RowIds` of just these rows (ascending), renumbered from 0, each id
        on its last row: what a compaction keeps."""
        import numpy as np

        self.freeze()
        rows = np.asarray(rows, np.int64)
        kept = RowIds()
        for s in range(0, len(rows), BLOCK_ROWS):
            kept._dead += kept._add_blocks(self.ids_of(rows[s : s + BLOCK_ROWS]))
        # the hashes carry over when every kept row is the row of its id (always so for the
        # store's compactions: no id has two live rows); otherwise they are recomputed
        valid = self._live_array()[self._slots.astype(np.int64)]
        slots = self._slots[valid].astype(np.int64)
        where = np.searchsorted(rows, slots)
        inside = where < len(rows)
        inside[inside] = rows[where[inside]] == slots[inside]
        if int(inside.sum()) == kept.count_live():
            kept._hashes = self._hashes[valid][inside]
            kept._slots = where[inside].astype(_row_dtype(len(kept)))
            kept._count = len(kept._hashes)
        else:
            named = kept.live_rows()
            kept._merge(
                np.fromiter((_hash(kept._frozen_id(int(r))) for r in named), np.int64, len(named)),
                named,
                deleted=[],
            )
        return kept

    def count_live(self) -> int:
        """Rows that have an id (:attr:`count`, unless an id has two live rows)."""
        return len(self) - self._dead

    # -- internals -----------------------------------------------------------------------
    def _add_blocks(self, ids: Sequence[str | None]) -> int:
        """Pack ``ids`` as frozen rows after the current ones (the index is left as it is);
        returns how many have no id."""

        for s in range(0, len(ids), BLOCK_ROWS):
            part = ids[s : s + BLOCK_ROWS]
            self._blocks.append(_Block(part))
            self._starts.append(self._frozen)
            self._frozen += len(part)
        live = bytes(rid is not None for rid in ids)
        self._live += live
        return len(ids) - live.count(1)

    def _frozen_id(self, row: int) -> str:
        b = bisect.bisect_right(self._starts, row) - 1
        return self._blocks[b][row - self._starts[b]]

    def _live_array(self) -> np.ndarray:
        """:attr:`_live` as a ``bool`` array (a copy: the bytearray stays resizable)."""
        import numpy as np

        return np.frombuffer(bytes(self._live), bool)

    def _frozen_row(self, rid: str) -> int | None:
        """The frozen row of ``rid`` if it still has it (the tail not consulted)."""
        if not len(self._hashes):
            return None
        h = _hash(rid)
        return self._confirmed(rid, h, int(self._hashes.searchsorted(h)))

    def _confirmed(self, rid: str, h: int, pos: int) -> int | None:
        """The row of ``rid`` among the entries of hash ``h`` from position ``pos`` on."""
        hashes, n = self._hashes, len(self._hashes)
        while pos < n and hashes[pos] == h:  # equal hashes: compare the ids
            row = int(self._slots[pos])
            if self._live[row] and self._frozen_id(row) == rid:
                return row
            pos += 1
        return None

    def _frozen_rows(self, ids: Sequence[str]) -> list[int | None]:
        """:meth:`_frozen_row` of many ids: one ``searchsorted`` for all their hashes."""
        import numpy as np

        n = len(self._hashes)
        if len(ids) < 8 or not n:  # numpy's per-call cost outweighs a few searches
            return [self._frozen_row(rid) for rid in ids]
        out: list[int | None] = [None] * len(ids)
        wanted = np.fromiter(map(_hash, ids), np.int64, len(ids))
        at = np.searchsorted(self._hashes, wanted)
        hit = np.flatnonzero(self._hashes[np.minimum(at, n - 1)] == wanted)
        rows = self._slots[at[hit]].tolist()
        live, frozen_id = self._live, self._frozen_id
        for k, row, pos in zip(hit.tolist(), rows, at[hit].tolist(), strict=True):
            if live[row] and frozen_id(row) == ids[k]:
                out[k] = row
            else:  # deleted, or another id of the same hash: look further
                out[k] = self._confirmed(ids[k], int(wanted[k]), pos + 1)
        return out

    def _merge(self, hashes: np.ndarray, rows: np.ndarray, *, deleted: list[str]) -> None:
        """Fold new frozen ``(hash, row)`` entries into the sorted index: entries of rows
        deleted since and of ``deleted`` ids go; of two rows with one id the later stays."""
        import numpy as np

        keep = self._live_array()[self._slots.astype(np.int64)]
        for rid in deleted:
            row = self._frozen_row(rid)
            if row is not None:
                keep &= self._slots != row
        order = np.argsort(hashes, kind="stable")
        hashes, rows = hashes[order], rows[order]
        old_hashes, old_rows = self._hashes[keep], self._slots[keep].astype(np.int64)
        at = np.searchsorted(old_hashes, hashes, side="right")
        merged_hashes = np.insert(old_hashes, at, hashes)
        merged_rows = np.insert(old_rows, at, rows)
        same = np.flatnonzero(merged_hashes[1:] == merged_hashes[:-1])
        if len(same):  # one id on several rows (or a 64-bit collision): rare
            drop = self._replaced(merged_rows, same)
            if drop:
                gone = np.asarray(sorted(drop), np.int64)
                merged_hashes = np.delete(merged_hashes, gone)
                merged_rows = np.delete(merged_rows, gone)
        self._hashes = merged_hashes
        self._slots = merged_rows.astype(_row_dtype(self._frozen))
        self._count = len(self._hashes)

    def _replaced(self, rows: np.ndarray, same: np.ndarray) -> set[int]:
        """Positions of an id's earlier rows among the runs of equal hashes (``same``: the
        positions equal to the next one)."""
        import numpy as np

        drop: set[int] = set()
        breaks = np.diff(same) != 1
        firsts = same[np.concatenate([[True], breaks])]
        lasts = same[np.concatenate([breaks, [True]])] + 1
        for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
            latest: dict[str, int] = {}  # id -> position of its latest row in the run
            for pos in range(first, last + 1):
                rid = self._frozen_id(int(rows[pos]))
                held = latest.get(rid)
                if held is None:
                    latest[rid] = pos
                elif rows[held] < rows[pos]:
                    drop.add(held)
                    latest[rid] = pos
                else:
                    drop.add(pos)
        return drop


def _row_dtype(n_rows: int) -> type:
    import numpy as np

    return np.uint32 if n_rows < 1 << 32 else np.int64


def _batches(ids: Iterable[str | None], size: int) -> Iterator[list[str | None]]:
    """``ids`` in lists of ``size`` (the last one shorter)."""
    batch: list[str | None] = []
    for rid in ids:
        batch.append(rid)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
