"""Choosing a CPU runtime by measurement, and remembering the choice per model and machine.

:func:`measure_runtimes` times eager torch and every installed exported runtime (ONNX
Runtime, OpenVINO) in fp32 on one batch of the real input shape, side by side:

1. torch runs the batch once (the reference vectors); each exported runtime is built
   (exported once into the runtime cache, or loaded from it) and runs the batch once (its
   warm-up); a runtime whose vectors are not those of torch (minimum cosine per vector
   below :data:`MIN_COSINE`) is rejected, as is one that is not installed or fails to
   export;
2. rounds of one forward per candidate, in rotating order, best time kept: at least
   :data:`MIN_ROUNDS`, at most :data:`MAX_ROUNDS`, stopping once the rounds have taken
   :data:`TIMING_BUDGET_S`;
3. the fastest exported runtime wins if it beats torch by :data:`SWITCH_MARGIN` (noise on a
   shared machine must not flip the choice), else torch stays.

:func:`choose_runtime` stores the result in the runtime cache (a small ``choice.json``
entry, verified on load like an export) under a key naming the model's fingerprint, the
input shape, the versions of torch / ONNX Runtime / OpenVINO / the exporter and this package,
and the CPU (model, flags, threads): another machine, another thread count or an upgrade
measures again. int8 is never measured here: it changes the vectors, so it stays opt-in.

Example:
    .. code-block:: python

        import torch

        from langchain_image_embeddings import create_encoder
        from langchain_image_embeddings.encoders.runtimes.choice import choose_runtime

        encoder = create_encoder("timm:efficientnet_lite0")
        measurement = choose_runtime(encoder, torch.randn(32, 3, 224, 224))
        print(measurement.chosen, measurement.images_per_second)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.errors import MissingDependencyError

if TYPE_CHECKING:
    import torch

    from langchain_image_embeddings.encoders.base import ImageEncoder
    from langchain_image_embeddings.encoders.runtimes.exported import ExportedRuntime

__all__ = [
    "CANDIDATES",
    "CHOICE_FILE",
    "CHOICE_FORMAT",
    "MAX_ROUNDS",
    "MIN_COSINE",
    "MIN_ROUNDS",
    "SWITCH_MARGIN",
    "TIMING_BUDGET_S",
    "RuntimeMeasurement",
    "choice_key",
    "choose_runtime",
    "measure_runtimes",
    "remembered_choice",
    "torch_forward",
]

logger = logging.getLogger(__name__)

#: The exported runtimes an automatic choice considers (fp32 only).
CANDIDATES: tuple[str, ...] = ("onnx", "openvino")
#: Bumped when the stored choice changes shape: older entries are measured again.
CHOICE_FORMAT = 1
CHOICE_FILE = "choice.json"
#: An exported runtime is a candidate only if every vector of the measuring batch has at
#: least this cosine to torch's (the fp32 contract of the runtimes).
MIN_COSINE = 0.9999
#: An exported runtime replaces torch only when its best time is this much shorter.
SWITCH_MARGIN = 1.05
MIN_ROUNDS = 2
MAX_ROUNDS = 3
#: Seconds of timing rounds after which no further round starts (past :data:`MIN_ROUNDS`).
TIMING_BUDGET_S = 10.0


@dataclass(frozen=True)
class RuntimeMeasurement:
    """What a measurement found, and which runtime it chose.

    Attributes:
        chosen: ``"torch"``, ``"onnx"`` or ``"openvino"``.
        images_per_second: Best rate of each runtime timed (torch always).
        min_cosine: Per exported runtime that ran, the minimum cosine of its vectors to
            torch's on the measuring batch.
        rejected: Per runtime that could not compete, why (not installed, export failed,
            vectors differ).
        batch_shape: The measuring batch's shape ``(N, C, H, W)``.
        threads: Intra-op threads every runtime used.
        seconds: Wall time of the whole measurement (exports included).
        measured_at: Unix time of the measurement.
        source: ``"measured"`` (now, by this process) or ``"remembered"`` (from the cache).
        entry: The cache folder holding the choice (``None`` when not stored).
        runtimes: The exported runtimes built while measuring (not stored), so the winner
            is used without being built again.

    Example:
        >>> m = RuntimeMeasurement("onnx", {"torch": 50.0, "onnx": 75.0}, {"onnx": 1.0}, {},
        ...                        (32, 3, 224, 224), 2, 12.5, 0.0)
        >>> m.speedup("onnx")
        1.5
    """

    chosen: str
    images_per_second: dict[str, float]
    min_cosine: dict[str, float]
    rejected: dict[str, str]
    batch_shape: tuple[int, ...]
    threads: int
    seconds: float
    measured_at: float
    source: str = "measured"
    entry: str | None = None
    runtimes: dict[str, ExportedRuntime] = field(default_factory=dict, repr=False, compare=False)

    def speedup(self, runtime: str) -> float:
        """``runtime``'s rate over torch's (``nan`` when it was not timed)."""
        rate = self.images_per_second.get(runtime)
        torch_rate = self.images_per_second.get("torch")
        if rate is None or not torch_rate:
            return math.nan
        return rate / torch_rate

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view (what ``choice.json`` stores, plus source and entry)."""
        return {
            "format": CHOICE_FORMAT,
            "chosen": self.chosen,
            "images_per_second": dict(self.images_per_second),
            "min_cosine": dict(self.min_cosine),
            "rejected": dict(self.rejected),
            "batch_shape": list(self.batch_shape),
            "threads": self.threads,
            "seconds": self.seconds,
            "measured_at": self.measured_at,
            "source": self.source,
            "entry": self.entry,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> RuntimeMeasurement:
        """Read :meth:`to_dict`'s output back; ``ValueError`` when it is not a usable one."""
        if data.get("format") != CHOICE_FORMAT:
            raise ValueError(f"choice format {data.get('format')!r}, not {CHOICE_FORMAT}")
        chosen = data["chosen"]
        rates = {str(k): float(v) for k, v in dict(data["images_per_second"]).items()}
        if chosen not in ("torch", *CANDIDATES) or chosen not in rates or "torch" not in rates:
            raise ValueError(f"the choice {chosen!r} is not one of the timed runtimes")
        values: dict[str, Any] = {
            "chosen": str(chosen),
            "images_per_second": rates,
            "min_cosine": {str(k): float(v) for k, v in dict(data["min_cosine"]).items()},
            "rejected": {str(k): str(v) for k, v in dict(data["rejected"]).items()},
            "batch_shape": tuple(int(v) for v in data["batch_shape"]),
            "threads": int(data["threads"]),
            "seconds": float(data["seconds"]),
            "measured_at": float(data["measured_at"]),
            "source": str(data.get("source", "measured")),
            "entry": data.get("entry"),
        }
        values.update(overrides)
        return cls(**values)


def torch_forward(encoder: ImageEncoder, pixels: torch.Tensor) -> torch.Tensor:
    """The eager torch forward of ``encoder`` (eval mode, inference mode), whatever runtime
    is attached to it: what ``encode_images`` runs without a runtime."""
    import torch

    module = encoder.module
    if module.training:  # a training loop may have left it in train mode
        module.eval()
    with torch.inference_mode():
        return encoder.forward_images(pixels.to(encoder.device, non_blocking=True))


def choice_key(encoder: ImageEncoder, shape: tuple[int, ...], threads: int) -> dict[str, Any]:
    """The cache key of a choice: model, input shape, versions, CPU (loads the model)."""
    from langchain_image_embeddings.encoders.runtimes.cpu import cpu_identity
    from langchain_image_embeddings.encoders.runtimes.export import exporter_versions, version_of

    return {
        "kind": "runtime-choice",
        "format": CHOICE_FORMAT,
        "fingerprint": encoder.fingerprint(),
        "input": {"shape": [int(v) for v in shape], "dtype": "float32", "precision": "fp32"},
        "versions": {
            **exporter_versions(),
            "onnxruntime": version_of("onnxruntime"),
            "openvino": version_of("openvino"),
        },
        "cpu": cpu_identity(threads),
        "rules": {"min_cosine": MIN_COSINE, "switch_margin": SWITCH_MARGIN},
    }


def _cosine_min(a: torch.Tensor, b: torch.Tensor) -> float:
    import torch

    a, b = a.float().flatten(1), b.float().flatten(1)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).min())


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text if len(text) <= 200 else text[:197] + "..."


def measure_runtimes(
    encoder: ImageEncoder,
    pixels: torch.Tensor,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    candidates: tuple[str, ...] = CANDIDATES,
    reference: torch.Tensor | None = None,
    budget_s: float = TIMING_BUDGET_S,
) -> RuntimeMeasurement:
    """Time torch and each installed exported runtime on ``pixels``; choose (not stored).

    Args:
        encoder: A CPU encoder (any runtime attached to it is bypassed: torch is timed
            through :func:`torch_forward`).
        pixels: One preprocessed batch of the real input shape.
        cache_dir: The export cache (default: ``$IMGEMB_CACHE_DIR``).
        threads: Intra-op threads of the exported runtimes (default: torch's).
        candidates: Exported runtimes to consider.
        reference: torch's features for ``pixels`` if already computed.
        budget_s: Seconds of timing rounds after which no further round starts.

    Returns:
        The measurement; ``runtimes`` holds the exported runtimes that ran.
    """
    import torch

    from langchain_image_embeddings.encoders.runtimes.exported import ExportedRuntime

    started = time.perf_counter()
    threads = threads or torch.get_num_threads()
    if reference is None:
        reference = torch_forward(encoder, pixels)  # also the warm-up
    runs: dict[str, Callable[[], object]] = {"torch": lambda: torch_forward(encoder, pixels)}
    built: dict[str, ExportedRuntime] = {}
    cosines: dict[str, float] = {}
    rejected: dict[str, str] = {}
    for name in candidates:
        try:
            runtime = ExportedRuntime(encoder, name, cache_dir=cache_dir, threads=threads)
        except MissingDependencyError as exc:
            rejected[name] = f"not installed ({exc})"
            continue
        try:
            features = runtime.encode_images(pixels)  # exports or loads, then warms up
        except Exception as exc:  # any exporter / runtime failure: torch keeps running
            rejected[name] = f"export or session failed: {_short(exc)}"
            continue
        cosine = _cosine_min(features, reference)
        cosines[name] = cosine
        if not cosine >= MIN_COSINE:  # also refuses NaN
            rejected[name] = f"vectors differ from torch (min cosine {cosine:.6f} < {MIN_COSINE})"
            continue
        built[name] = runtime
        runs[name] = lambda runtime=runtime: runtime.encode_images(pixels)  # type: ignore[misc]
    best: dict[str, float] = {}
    names = list(runs)
    timing = time.perf_counter()
    for round_ in range(MAX_ROUNDS):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:  # rotate: no runtime always goes first
            t0 = time.perf_counter()
            runs[name]()
            best[name] = min(best.get(name, math.inf), time.perf_counter() - t0)
        if round_ + 1 >= MIN_ROUNDS and time.perf_counter() - timing > budget_s:
            break
    rows = int(pixels.shape[0])
    rates = {name: round(rows / max(seconds, 1e-9), 3) for name, seconds in best.items()}
    chosen = "torch"
    exported = [name for name in built if name in best]
    if exported:
        fastest = min(exported, key=lambda name: best[name])
        if best[fastest] * SWITCH_MARGIN <= best["torch"]:
            chosen = fastest
    return RuntimeMeasurement(
        chosen=chosen,
        images_per_second=rates,
        min_cosine={name: round(value, 7) for name, value in cosines.items()},
        rejected=rejected,
        batch_shape=tuple(int(v) for v in pixels.shape),
        threads=int(threads),
        seconds=round(time.perf_counter() - started, 3),
        measured_at=time.time(),
        runtimes=built,
    )


def _read_choice(folder: Path) -> RuntimeMeasurement:
    data = json.loads((folder / CHOICE_FILE).read_text())
    return RuntimeMeasurement.from_dict(data, source="remembered", entry=str(folder))


def _is_valid(folder: Path) -> bool:
    try:
        _read_choice(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("remembered runtime choice in %s is unusable (%s)", folder, exc)
        return False
    return True


def remembered_choice(
    encoder: ImageEncoder,
    shape: tuple[int, ...],
    *,
    threads: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RuntimeMeasurement | None:
    """The choice stored for ``encoder`` on this machine and input shape, else ``None``
    (never measures; loads the model for its fingerprint)."""
    import torch

    from langchain_image_embeddings.encoders.runtimes.cache import ExportCache

    key = choice_key(encoder, shape, threads or torch.get_num_threads())
    entry = ExportCache(cache_dir).peek(key, valid=_is_valid)
    return None if entry is None else _read_choice(entry.path)


def choose_runtime(
    encoder: ImageEncoder,
    pixels: torch.Tensor,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    reference: torch.Tensor | None = None,
    remeasure: bool = False,
    budget_s: float = TIMING_BUDGET_S,
) -> RuntimeMeasurement:
    """The remembered choice for ``encoder`` on this machine and ``pixels``' shape, or a new
    measurement (:func:`measure_runtimes`) stored for every later process.

    A corrupt ``choice.json`` (checksum), an unreadable or older-format one is measured
    again; another process measuring the same key at the same time is waited for (the
    cache's lock), so a machine measures a model once.

    Args:
        encoder: A CPU encoder.
        pixels: One preprocessed batch of the real input shape.
        cache_dir: The runtime cache (default: ``$IMGEMB_CACHE_DIR``).
        threads: Intra-op threads (default: torch's); part of the key.
        reference: torch's features for ``pixels`` if already computed.
        remeasure: Measure even if a choice is stored (``imgemb bench``), and store it.
        budget_s: See :func:`measure_runtimes`.

    Raises:
        EncoderError: The cache folder cannot be created.
    """
    import torch

    from langchain_image_embeddings.encoders.runtimes.cache import ExportCache

    threads = threads or torch.get_num_threads()
    key = choice_key(encoder, tuple(int(v) for v in pixels.shape), threads)
    measured: list[RuntimeMeasurement] = []

    def build(folder: Path) -> None:
        result = measure_runtimes(
            encoder,
            pixels,
            cache_dir=cache_dir,
            threads=threads,
            reference=reference,
            budget_s=budget_s,
        )
        measured.append(result)
        stored = result.to_dict()
        del stored["source"], stored["entry"]
        (folder / CHOICE_FILE).write_text(json.dumps(stored, indent=1))

    entry = ExportCache(cache_dir).get_or_build(key, build, valid=_is_valid, rebuild=remeasure)
    if measured:
        return dataclasses.replace(measured[0], entry=str(entry.path))
    return _read_choice(entry.path)
