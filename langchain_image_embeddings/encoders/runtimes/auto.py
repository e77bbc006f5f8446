"""``runtime="auto"``: eager torch until a workload proves big, then the runtime measured
fastest on this machine.

Measuring costs an ONNX export (once per model and machine, ~10-15 s for ViT-B/32 or
EfficientNet-Lite0 on 2 quiet cores) plus a few timed batches, so it is only worth it for
real workloads. :class:`AutoRuntime` therefore runs torch and counts what the model has done;
it chooses at the first full batch once **all three** hold:

* the model has at least :data:`MIN_PARAMETERS` parameters (2 M: EfficientNet-Lite0 has
  3.4 M, ViT-B/32 151 M; a smaller model costs well under a millisecond per image, decoding
  dominates and no runtime repays an export; every tiny test model is below it, so a test
  suite never measures, however loaded the machine);
* it has embedded at least :data:`MIN_IMAGES` images through this object, and
* spent at least :data:`DEFAULT_MEASURE_AFTER_S` seconds on them
  (``$IMGEMB_AUTO_RUNTIME_AFTER_S`` or ``after_s=``; ``0`` waives both counts: the choice is
  made at the first batch).

Then it asks :func:`~langchain_image_embeddings.encoders.runtimes.choice.choose_runtime` for
the choice: remembered from an earlier process on this machine (only the winner's session
is opened, 1-4 s), or measured now on that very batch (timing rounds bounded by
:data:`~langchain_image_embeddings.encoders.runtimes.choice.TIMING_BUDGET_S`) and remembered.
Until then, and for every one-off call of a few images, nothing is paid but a clock read.

Rules kept whatever happens:

* fp32 only, and only a runtime whose vectors match torch's on the measuring batch
  (cosine >= 0.9999; checked again when a remembered choice is applied);
* nothing installed, an export that fails, a cache that cannot be written: torch goes on,
  with a :class:`RuntimeFallbackWarning`; never an error;
* weights that change after the switch (a fine-tune of the shared module) retire the
  exported session: torch from then on, since the exported copy holds the old weights;
* text stays on torch (the choice is measured on the image tower).

Example:
    .. code-block:: python

        from langchain_image_embeddings import create_encoder
        from langchain_image_embeddings.encoders.runtimes import with_runtime

        encoder = with_runtime(create_encoder("timm:efficientnet_lite0"), "auto")
        ...  # embed a large folder through ImageEmbeddings(encoder)
        print(encoder.runtime)   # "torch" until the choice, then the winner
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from langchain_image_embeddings.encoders.base import ImageEncoder
    from langchain_image_embeddings.encoders.runtimes.choice import RuntimeMeasurement
    from langchain_image_embeddings.encoders.runtimes.exported import ExportedRuntime

__all__ = [
    "AFTER_ENV",
    "DEFAULT_MEASURE_AFTER_S",
    "MIN_IMAGES",
    "MIN_PARAMETERS",
    "AutoRuntime",
    "RuntimeFallbackWarning",
    "RuntimeReport",
    "auto_runtime_of",
    "measure_after_s",
    "weights_version",
]

logger = logging.getLogger(__name__)

#: Seconds of eager-torch model time after which ``runtime="auto"`` chooses.
DEFAULT_MEASURE_AFTER_S = 10.0
#: Environment variable overriding :data:`DEFAULT_MEASURE_AFTER_S` (``0``: at the first
#: batch; ``inf``: never, torch always).
AFTER_ENV = "IMGEMB_AUTO_RUNTIME_AFTER_S"
#: Images embedded through one object before ``"auto"`` chooses (waived by ``after_s=0``).
MIN_IMAGES = 256
#: Models with fewer parameters stay on torch: too small for a runtime to repay its export.
MIN_PARAMETERS = 2_000_000


class RuntimeFallbackWarning(UserWarning):
    """``runtime="auto"`` could not use an exported runtime and runs eager torch."""


def measure_after_s() -> float:
    """:data:`AFTER_ENV` as seconds, else :data:`DEFAULT_MEASURE_AFTER_S`.

    Example:
        >>> import os; os.environ["IMGEMB_AUTO_RUNTIME_AFTER_S"] = "0"
        >>> measure_after_s()
        0.0
        >>> del os.environ["IMGEMB_AUTO_RUNTIME_AFTER_S"]
    """
    text = os.environ.get(AFTER_ENV, "").strip()
    if not text:
        return DEFAULT_MEASURE_AFTER_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        warnings.warn(
            f"${AFTER_ENV}={text!r} is not a number of seconds >= 0; using "
            f"{DEFAULT_MEASURE_AFTER_S:g}",
            RuntimeFallbackWarning,
            stacklevel=2,
        )
        return DEFAULT_MEASURE_AFTER_S
    return value


def weights_version(module: torch.nn.Module) -> int:
    """The sum of the in-place version counters of every parameter and buffer: changes
    when an optimiser step or ``load_state_dict`` writes into them (never by inference or
    a ``channels_last`` conversion), in microseconds rather than a hash of the weights."""
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        total += int(tensor._version)
    return total


@dataclass(frozen=True)
class RuntimeReport:
    """Where inference runs and why: what ``ImageEmbeddings.runtime_report()`` returns.

    Attributes:
        setting: The ``runtime=`` asked for (``"auto"``, ``"torch"``, ``"onnx"``,
            ``"openvino"``).
        active: The runtime running image batches now.
        reason: Why, in words.
        model_seconds: Eager-torch model time counted so far (``"auto"``).
        measure_after_s: Model time after which ``"auto"`` chooses (``None``: not auto).
        measurement: The measurement the choice rests on, if one was made or remembered.

    Example:
        >>> RuntimeReport("auto", "torch", "not measured yet").summary()
        'auto -> torch: not measured yet'
    """

    setting: str
    active: str
    reason: str
    model_seconds: float = 0.0
    measure_after_s: float | None = None
    measurement: RuntimeMeasurement | None = None

    def summary(self) -> str:
        """One line: setting, active runtime, reason, and the measured rates if any."""
        line = f"{self.setting} -> {self.active}: {self.reason}"
        m = self.measurement
        if m is not None:
            rates = ", ".join(
                f"{name} {rate:.1f}" for name, rate in sorted(m.images_per_second.items())
            )
            line += f" [{rates} img/s, batch {'x'.join(map(str, m.batch_shape))}]"
        return line

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return {
            "setting": self.setting,
            "active": self.active,
            "reason": self.reason,
            "model_seconds": round(self.model_seconds, 3),
            "measure_after_s": self.measure_after_s,
            "measurement": None if self.measurement is None else self.measurement.to_dict(),
        }


class AutoRuntime:
    """An encoder's runtime chosen by measurement (see the module docs).

    Attach it with ``with_runtime(encoder, "auto")``; ``ImageEmbeddings`` does so for the
    models it builds from a spec on a CPU (``runtime="auto"``, the default).

    Args:
        encoder: The encoder (its torch module is timed and exported).
        cache_dir: The runtime cache (exports and remembered choices).
        threads: Intra-op threads of the exported runtimes (default: torch's).
        after_s: Model seconds before choosing (default: :func:`measure_after_s`).

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings

            embeddings = ImageEmbeddings("timm:efficientnet_lite0")   # runtime="auto"
            embeddings.embed_images_array(paths)                       # thousands of photos
            print(embeddings.runtime_report().summary())
            # auto -> onnx: measured ... [onnx 73.1, openvino 70.0, torch 55.2 img/s, ...]
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        after_s: float | None = None,
    ) -> None:
        self.encoder = encoder
        self.cache_dir = cache_dir
        self.threads = threads
        self.after_s = measure_after_s() if after_s is None else float(after_s)
        #: Eager-torch model seconds and images counted before the choice.
        self.model_seconds = 0.0
        self.images = 0
        #: The measurement behind the choice (``None`` until made or remembered).
        self.measurement: RuntimeMeasurement | None = None
        self._state = "waiting"  # waiting | measuring | decided
        self._reason = ""
        self._active: ExportedRuntime | None = None
        self._weights: int | None = None
        self._max_rows = 0
        self._parameters: int | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AutoRuntime(active={self.name!r}, state={self._state!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        if state["_state"] == "measuring":  # a copy taken mid-measurement starts over
            state["_state"] = "waiting"
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The runtime running image batches now: ``"torch"`` until the choice."""
        return "torch" if self._active is None else self._active.name

    @property
    def decided(self) -> bool:
        """Whether the choice has been made (for good, in this object)."""
        return self._state == "decided"

    # -- inference ---------------------------------------------------------------------------
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features from the chosen runtime; torch (counted) until the choice."""
        from langchain_image_embeddings.encoders.runtimes.choice import torch_forward

        active = self._active
        if active is not None:
            if weights_version(self.encoder.module) == self._weights:
                return active.encode_images(pixels)
            self._retire()
        if self.encoder.device != "cpu" or self._state != "waiting":
            return torch_forward(self.encoder, pixels)
        started = time.perf_counter()
        features = torch_forward(self.encoder, pixels)
        elapsed = time.perf_counter() - started
        rows = int(pixels.shape[0])
        with self._lock:
            self.model_seconds += elapsed
            self.images += rows
            self._max_rows = max(self._max_rows, rows)
            # The choice is keyed by the batch shape: decide on a full batch, never on a
            # stream's short last one.
            due = self._state == "waiting" and rows >= self._max_rows and self._worth_it()
            if due:
                self._state = "measuring"
        if due:
            self._decide(pixels, features)
        return features

    def _worth_it(self) -> bool:
        """The rule of the module docs (called under the lock, on a full batch)."""
        if self.after_s > 0 and (self.images < MIN_IMAGES or self.model_seconds < self.after_s):
            return False
        if self._parameters is None:
            self._parameters = sum(p.numel() for p in self.encoder.module.parameters())
        if self._parameters < MIN_PARAMETERS:
            self._state = "decided"
            self._reason = (
                f"torch: {self._parameters:,} parameters, below the {MIN_PARAMETERS:,} "
                "worth measuring"
            )
            return False
        return True

    def encode_texts(self, texts: Any) -> None:
        """Texts run on torch (the choice was measured on the image tower)."""
        return None

    def report(self, setting: str = "auto") -> RuntimeReport:
        """Where image batches run now, and why."""
        if self._state == "waiting":
            reason = (
                f"torch until {MIN_IMAGES} images and {self.after_s:g} s of model time, then "
                f"measured ({self.images} images, {self.model_seconds:.1f} s so far)"
            )
        elif self._state == "measuring":
            reason = "measuring now"
        else:
            reason = self._reason
        return RuntimeReport(
            setting=setting,
            active=self.name,
            reason=reason,
            model_seconds=self.model_seconds,
            measure_after_s=self.after_s,
            measurement=self.measurement,
        )

    # -- the choice --------------------------------------------------------------------------
    def _decide(self, pixels: torch.Tensor, reference: torch.Tensor) -> None:
        import torch

        from langchain_image_embeddings.encoders.runtimes.choice import CANDIDATES, choose_runtime

        spec = self.encoder.spec
        threads = self.threads or torch.get_num_threads()
        if not any(_installed(name) for name in CANDIDATES):
            self._fallback(
                "neither ONNX Runtime nor OpenVINO is installed (pip install "
                '"langchain-image-embeddings[onnx]" or "[openvino]" to let auto measure them)'
            )
            return
        try:
            measurement = choose_runtime(
                self.encoder,
                pixels,
                cache_dir=self.cache_dir,
                threads=threads,
                reference=reference,
            )
        except Exception as exc:  # a cache that cannot be written, an exporter crash ...
            self._fallback(f"measuring the runtimes failed ({type(exc).__name__}: {exc})")
            return
        chosen = measurement.chosen
        active = measurement.runtimes.get(chosen) if chosen != "torch" else None
        # Keep only the winner's session alive (a losing one holds a copy of the weights).
        measurement = dataclasses.replace(measurement, runtimes={})
        self.measurement = measurement
        failures = {
            name: why
            for name, why in measurement.rejected.items()
            if not why.startswith("not installed")
        }
        if failures and measurement.source == "measured":
            warnings.warn(
                f"runtime='auto' for {spec}: "
                + "; ".join(f"{name}: {why}" for name, why in failures.items())
                + f"; choosing among the rest ({measurement.chosen})",
                RuntimeFallbackWarning,
                stacklevel=2,
            )
        if chosen != "torch" and active is None:  # remembered: open the winner's session
            active = self._open(chosen, pixels, reference, threads)
            if active is None:
                return
        rates = ", ".join(f"{k} {v:.1f}" for k, v in sorted(measurement.images_per_second.items()))
        how = "remembered" if measurement.source == "remembered" else "measured"
        reason = f"{how} on this machine, fastest fp32 runtime with torch's vectors"
        logger.info(
            "runtime auto for %s: %s, %s (%s img/s on %s; measuring took %.1f s; choice in %s)",
            spec,
            chosen,
            how,
            rates,
            "x".join(map(str, measurement.batch_shape)),
            measurement.seconds,
            measurement.entry,
        )
        self._switch(active, reason)

    def _open(
        self, name: str, pixels: torch.Tensor, reference: torch.Tensor, threads: int
    ) -> ExportedRuntime | None:
        """The remembered winner's runtime, checked against torch on this batch."""
        from langchain_image_embeddings.encoders.runtimes.choice import MIN_COSINE
        from langchain_image_embeddings.encoders.runtimes.exported import ExportedRuntime

        try:
            runtime = ExportedRuntime(self.encoder, name, cache_dir=self.cache_dir, threads=threads)
            features = runtime.encode_images(pixels)
        except Exception as exc:
            self._fallback(f"the remembered {name} failed ({type(exc).__name__}: {exc})")
            return None
        import torch

        cosine = float(
            torch.nn.functional.cosine_similarity(
                features.float().flatten(1), reference.float().flatten(1), dim=-1
            ).min()
        )
        if not cosine >= MIN_COSINE:
            self._fallback(f"the remembered {name}'s vectors differ (min cosine {cosine:.6f})")
            return None
        return runtime

    def _switch(self, active: ExportedRuntime | None, reason: str) -> None:
        with self._lock:
            self._weights = None if active is None else weights_version(self.encoder.module)
            self._active = active
            self._reason = reason
            self._state = "decided"

    def _fallback(self, why: str) -> None:
        warnings.warn(
            f"runtime='auto' for {self.encoder.spec}: {why}; running torch",
            RuntimeFallbackWarning,
            stacklevel=3,
        )
        logger.warning("runtime auto for %s: %s; running torch", self.encoder.spec, why)
        self._switch(None, f"fallback: {why}")

    def _retire(self) -> None:
        with self._lock:
            if self._active is None:
                return
            logger.info(
                "runtime auto for %s: the weights changed after the switch to %s; torch "
                "from now on",
                self.encoder.spec,
                self._active.name,
            )
            self._active = None
            self._reason = "the weights changed after the choice (training?): torch"


def auto_runtime_of(encoder: ImageEncoder) -> AutoRuntime | None:
    """The :class:`AutoRuntime` attached to ``encoder``, if any."""
    attached = getattr(encoder, "_runtime", None)
    return attached if isinstance(attached, AutoRuntime) else None


def _installed(name: str) -> bool:
    from langchain_image_embeddings.errors import MissingDependencyError

    try:
        if name == "onnx":
            from langchain_image_embeddings.encoders.runtimes.onnx import require_onnxruntime

            require_onnxruntime()
        else:
            from langchain_image_embeddings.encoders.runtimes.openvino import require_openvino

            require_openvino()
    except MissingDependencyError:
        return False
    return True
