"""Near-duplicate groups of a store: images whose vectors are closer than a threshold.

:func:`find_duplicates` reads the store's own vectors (no model runs, no image is read) and
compares every record with every other one in blocks (one matrix product per block of rows,
exact, whatever index the store keeps), links each pair whose relevance score is at or above
the threshold, and joins linked records into groups: crops, flips, re-encodes and resized
copies of one photo end up in one group. Scores are the stores' relevance scores in
``[0, 1]`` (``(1 + cosine) / 2``), the scale every search returns.

Three ways to join (``method``); pairs are taken strongest first:

* ``"centroid"`` (default): two groups merge when every member of the merged group scores
  at or above the threshold against the group's mean direction, up to ``max_group_size``
  members. A crop and a flip of one photo (0.88 to each other, 0.95 to the photo) stay
  together; a chain drifts away from its mean and is cut.
* ``"complete"``: two groups merge only when every cross pair reaches the threshold
  (strictest: such a crop and flip may end in different groups), up to ``max_group_size``.
* ``"single"``: any chain of links joins (union-find). At 0.8 on 2,004 photos it merged an
  astronaut, a camera and a coffee cup through intermediate copies into one group of 751.

Each group suggests a keeper (:attr:`DuplicateGroup.keeper`: most pixels, then the largest
file, then the shortest path) and :func:`removal_plan` lists the other members as the ones
to remove (nothing here deletes anything).

Identical files are already one record (their paths are listed in its ``sources``); such a
record alone is reported as a group when it has several paths.

Cost: ``n^2 * dim`` multiply-adds in blocks of ``block_size`` rows, about 10 s on two CPU
cores for 10,000 records of 512 dimensions, in ``block_size * n`` floats of memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.vectorstores._records import record_paths, relevance_from_cosine

if TYPE_CHECKING:
    import numpy as np

    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

__all__ = [
    "DEFAULT_MAX_GROUP_SIZE",
    "DEFAULT_THRESHOLD",
    "METHODS",
    "DuplicateGroup",
    "DuplicateMember",
    "find_duplicates",
    "keeper_rank",
    "removal_plan",
]

#: Default relevance threshold: crops, flips and re-encodes of a photo score above it with
#: CLIP and ImageNet models, different photos below.
DEFAULT_THRESHOLD = 0.9

#: Largest group complete linkage builds (a near-constant image repeated thousands of times
#: is shown as several groups rather than one page nobody can review).
DEFAULT_MAX_GROUP_SIZE = 50

#: The ways groups are joined (see the module docstring).
METHODS = ("centroid", "complete", "single")

_FETCH = 1000  # ids per vector read (Chroma caps the size of one get)


@dataclass
class DuplicateMember:
    """One record of a :class:`DuplicateGroup`.

    Attributes:
        id: The record id.
        source: The record's primary path or URI.
        sources: Every path with these exact bytes.
        score: The best relevance score to another member of the group (1.0 for a record
            that is a group on its own because several paths share its bytes).
        metadata: The record's metadata.
    """

    id: str
    source: str
    sources: list[str]
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "source": self.source,
            "sources": self.sources,
            "score": round(self.score, 6),
            "metadata": self.metadata,
        }


@dataclass
class DuplicateGroup:
    """Records whose images are near-duplicates (see ``method`` of :func:`find_duplicates`).

    Attributes:
        members: The records, best-linked first.
        min_score: The least similar two members (``"complete"``: at or above the
            threshold; ``"centroid"`` and ``"single"`` may hold pairs below it).
        max_score: The most similar two members.
    """

    members: list[DuplicateMember]
    min_score: float
    max_score: float

    def __len__(self) -> int:
        return len(self.members)

    @property
    def keeper(self) -> DuplicateMember:
        """The member to keep: most pixels, then the largest file, then the shortest path."""
        return min(self.members, key=keeper_rank)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``keeper``: the id of :attr:`keeper`)."""
        return {
            "size": len(self.members),
            "keeper": self.keeper.id,
            "images": sum(len(m.sources) for m in self.members),
            "min_score": round(self.min_score, 6),
            "max_score": round(self.max_score, 6),
            "members": [m.to_dict() for m in self.members],
        }


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def keeper_rank(member: DuplicateMember) -> tuple[float, float, int, str]:
    """Sort key of the keeper choice (smallest first): most pixels (``width * height``),
    then most ``bytes``, then the shortest and then alphabetically first path."""
    meta = member.metadata
    pixels = _number(meta.get("width")) * _number(meta.get("height"))
    return (-pixels, -_number(meta.get("bytes")), len(member.source), member.source)


def removal_plan(
    groups: list[DuplicateGroup], keep: dict[str, bool] | None = None
) -> list[dict[str, Any]]:
    """The records to remove so that one of each group is kept (nothing is deleted here).

    Args:
        groups: Near-duplicate groups (:func:`find_duplicates`).
        keep: Choices that override the suggestion, by record id (``True``: keep it,
            ``False``: remove it); a group whose members are all removed keeps its keeper.

    Returns:
        One row per record to remove: ``group`` (1-based), ``id``, ``source``, ``score``,
        ``width``, ``height``, ``bytes``, ``keeper_id`` and ``keeper_source``.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.duplicates import find_duplicates, removal_plan

            rows = removal_plan(find_duplicates(store, 0.9))
            print([row["source"] for row in rows])
    """
    keep = keep or {}
    rows: list[dict[str, Any]] = []
    for number, group in enumerate(groups, start=1):
        keeper = group.keeper
        kept = {m.id for m in group.members if keep.get(m.id, m.id == keeper.id)}
        if not kept:
            kept = {keeper.id}
        first_kept = next(m for m in sorted(group.members, key=keeper_rank) if m.id in kept)
        for member in group.members:
            if member.id in kept:
                continue
            rows.append(
                {
                    "group": number,
                    "id": member.id,
                    "source": member.source,
                    "score": round(member.score, 6),
                    "width": member.metadata.get("width"),
                    "height": member.metadata.get("height"),
                    "bytes": member.metadata.get("bytes"),
                    "keeper_id": first_kept.id,
                    "keeper_source": first_kept.source,
                }
            )
    return rows


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _all_vectors(store: ImageVectorStore, ids: list[str]) -> np.ndarray:
    import numpy as np

    parts = [store.get_vectors(ids[i : i + _FETCH]) for i in range(0, len(ids), _FETCH)]
    matrix = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)  # stores keep unit rows; be sure


def find_duplicates(
    store: ImageVectorStore,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    method: str = "centroid",
    max_group_size: int = DEFAULT_MAX_GROUP_SIZE,
    block_size: int = 1024,
) -> list[DuplicateGroup]:
    """Groups of near-duplicate records in a store (largest groups first).

    Args:
        store: Any image store (FAISS, Chroma embedded or server).
        threshold: Relevance score in ``(0, 1]`` at or above which two records are linked.
        method: ``"centroid"`` (every member near the group's mean direction),
            ``"complete"`` (every two members linked) or ``"single"`` (any chain joins).
        max_group_size: Most members of a ``"centroid"`` or ``"complete"`` group (ignored
            by ``"single"``).
        block_size: Rows compared per matrix product (memory: ``block_size * len(store)``
            floats).

    Returns:
        The groups with at least two records, or one record with several paths.

    Raises:
        ValueError: ``threshold`` outside ``(0, 1]``, an unknown ``method``,
            ``max_group_size`` < 2 or ``block_size`` < 1.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.duplicates import find_duplicates
            from langchain_image_embeddings.vectorstores import open_store

            for group in find_duplicates(open_store("faiss:index", create=False), 0.9):
                print(group.min_score, [m.source for m in group.members])
    """

    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1] (a relevance score), got {threshold}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if max_group_size < 2:
        raise ValueError(f"max_group_size must be at least 2, got {max_group_size}")
    # captions stored beside images (kind "text") are not images: their vectors are text's
    records = {i: m for i, m in store.records().items() if m.get("kind") != "text"}
    ids = list(records)
    n = len(ids)
    if n == 0:
        return []
    vectors = _all_vectors(store, ids)
    cosine = 2.0 * threshold - 1.0 - 1e-6
    pairs, scores = _pairs(vectors, cosine, block_size)
    if method == "single":
        uf = _UnionFind(n)
        for i, j in pairs.tolist():
            uf.union(i, j)
        root_of = [uf.find(i) for i in range(n)]
    else:
        root_of = _complete_link(
            vectors, pairs, scores, cosine, max_group_size, centroid=method == "centroid"
        )
    best, worst = _extremes(vectors, root_of)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root_of[i], []).append(i)
    groups = [
        group
        for rows_of in members.values()
        if (group := _group(rows_of, ids, records, best, worst)) is not None
    ]
    groups.sort(key=lambda g: (-len(g.members), -g.max_score, g.members[0].source))
    return groups


def _pairs(vectors: np.ndarray, cosine: float, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``i < j`` at or above ``cosine`` (``(m, 2)`` rows), strongest first, and
    their cosines; block by block (upper triangle only)."""
    import numpy as np

    n = len(vectors)
    found_pairs: list[np.ndarray] = []
    found_scores: list[np.ndarray] = []
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        sims = vectors[start:stop] @ vectors[start:].T  # j >= i
        linked = sims >= cosine
        linked[:, : stop - start] &= np.triu(np.ones((stop - start,) * 2, dtype=bool), 1)
        rows, cols = np.nonzero(linked)
        if len(rows):
            found_scores.append(sims[rows, cols])
            found_pairs.append(np.stack([rows + start, cols + start], axis=1))
    if not found_pairs:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    pairs = np.concatenate(found_pairs)
    scores = np.concatenate(found_scores)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -scores))  # strongest first, then stable
    return pairs[order], scores[order]


def _complete_link(
    vectors: np.ndarray,
    pairs: np.ndarray,
    scores: np.ndarray,
    cosine: float,
    cap: int,
    *,
    centroid: bool = False,
) -> list[int]:
    """The group (a root row) of every row, strongest pairs first: two groups merge when
    every cross pair reaches ``cosine`` (``centroid``: when every member of the merged group
    reaches it against the group's mean direction) and the result has at most ``cap``
    members."""
    import numpy as np

    n = len(vectors)
    root_of = list(range(n))
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    refused: set[tuple[int, int]] = set()  # (root, root) whose groups cannot merge
    for i, j in pairs.tolist():
        a, b = root_of[i], root_of[j]
        if a == b or (min(a, b), max(a, b)) in refused:
            continue
        group_a, group_b = members[a], members[b]
        if len(group_a) + len(group_b) > cap:
            refused.add((min(a, b), max(a, b)))
            continue
        if centroid:
            both = vectors[group_a + group_b]
            mean = both.sum(axis=0)
            mean /= max(float(np.linalg.norm(mean)), 1e-12)
            fits = float((both @ mean).min()) >= cosine
        else:
            fits = (len(group_a) == 1 and len(group_b) == 1) or float(
                (vectors[group_a] @ vectors[group_b].T).min()
            ) >= cosine
        if not fits:
            # a refusal stays true while both roots last: groups only grow
            refused.add((min(a, b), max(a, b)))
            continue
        keep, gone = (a, b) if len(group_a) >= len(group_b) else (b, a)
        for row in members[gone]:
            root_of[row] = keep
        members[keep].extend(members.pop(gone))
    return root_of


def _extremes(vectors: np.ndarray, root_of: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's most and least similar other member of its own group (cosines)."""
    import numpy as np

    n = len(vectors)
    best = np.full(n, -2.0, dtype=np.float32)
    worst = np.full(n, 2.0, dtype=np.float32)
    groups: dict[int, list[int]] = {}
    for row, root in enumerate(root_of):
        groups.setdefault(root, []).append(row)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        sims = vectors[rows] @ vectors[rows].T
        np.fill_diagonal(sims, -2.0)
        best[rows] = sims.max(axis=1)
        np.fill_diagonal(sims, 2.0)
        worst[rows] = sims.min(axis=1)
    return best, worst


def _group(
    rows_of: list[int],
    ids: list[str],
    records: dict[str, dict[str, Any]],
    best: np.ndarray,
    worst: np.ndarray,
) -> DuplicateGroup | None:
    """The group of linked rows, or ``None`` for a lone record with a single path."""
    paths = {i: record_paths(records[ids[i]]) or [ids[i]] for i in rows_of}
    if len(rows_of) < 2 and len(paths[rows_of[0]]) < 2:
        return None
    linked = len(rows_of) > 1  # one record with several paths: identical bytes, score 1
    ordered = sorted(rows_of, key=lambda i: (-float(best[i]), str(paths[i][0])))
    return DuplicateGroup(
        members=[
            DuplicateMember(
                id=ids[i],
                source=str(records[ids[i]].get("source", paths[i][0])),
                sources=paths[i],
                score=relevance_from_cosine(float(best[i])) if linked else 1.0,
                metadata=records[ids[i]],
            )
            for i in ordered
        ],
        min_score=relevance_from_cosine(float(worst[rows_of].min())) if linked else 1.0,
        max_score=relevance_from_cosine(float(best[rows_of].max())) if linked else 1.0,
    )
