"""Batch sampling for fine-tuning: P x K batches for triplet mining, shuffled batches for InfoNCE."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["batched", "pk_batches", "random_batches"]


def pk_batches(
    labels: Sequence[int], batch_size: int, samples_per_class: int, rng: random.Random
) -> list[list[int]]:
    """P x K batches: groups of ``K`` indices of one label, shuffled, packed into batches.

    Every batch then holds positives for the triplet loss.
    """
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    groups: list[list[int]] = []
    for idx in by_label.values():
        idx = idx[:]
        rng.shuffle(idx)
        k = max(2, samples_per_class)
        groups += [idx[j : j + k] for j in range(0, len(idx), k) if len(idx[j : j + k]) >= 2]
    rng.shuffle(groups)
    batches: list[list[int]] = []
    current: list[int] = []
    for group in groups:
        if current and len(current) + len(group) > batch_size:
            batches.append(current)
            current = []
        current += group
    if len(current) >= 2:
        batches.append(current)
    return batches


def random_batches(n: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of ``range(n)`` (a last batch of one item is dropped)."""
    order = list(range(n))
    rng.shuffle(order)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in batches if len(b) >= 2]


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
