"""What the CPU is: the part of a remembered runtime choice's key that names the machine.

Which runtime is fastest depends on the CPU (its model, its instruction sets) and on the
threads the forward pass may use, so a choice measured on one machine is never reused on
another: :func:`cpu_identity` goes into the key. Read from ``/proc/cpuinfo`` on Linux;
elsewhere ``platform.processor()`` and no flags.

Example:
    >>> identity = cpu_identity(threads=2)
    >>> sorted(identity)
    ['flags', 'machine', 'model', 'threads']
"""

from __future__ import annotations

import hashlib
import platform
from typing import Any

__all__ = ["cpu_flags", "cpu_identity", "cpu_model"]


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(name):
                    return line.partition(":")[2].strip()
    except OSError:
        return None
    return None


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags (``avx2``, ``avx512_vnni`` ...), ``None`` when unreadable."""
    flags = _cpuinfo_field("flags")
    return None if flags is None else frozenset(flags.split())


def cpu_model() -> str:
    """The CPU's model name (``"AMD EPYC 7B13"``), or what ``platform`` knows."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def cpu_identity(threads: int) -> dict[str, Any]:
    """The machine as a runtime choice sees it: architecture, CPU model, a digest of its
    feature flags (the full list is long) and the intra-op thread count."""
    flags = cpu_flags()
    digest = "none"
    if flags is not None:
        digest = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16]
    return {
        "machine": platform.machine(),
        "model": cpu_model(),
        "flags": digest,
        "threads": int(threads),
    }
