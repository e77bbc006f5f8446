"""CPU runtimes behind the encoders: eager torch, ONNX Runtime, OpenVINO.

An encoder keeps its torch module (training, ``forward_images``, fingerprints, the pipeline's
preprocessing); :func:`with_runtime` attaches an :class:`ExportedRuntime` that answers
``encode_images`` / ``encode_texts`` from a model exported once to ONNX and cached on disk
(:mod:`~langchain_image_embeddings.encoders.runtimes.cache`). The pipeline is unchanged: it
calls ``encoder.encode_images(pixels)`` and gets a tensor back.

fp32 (the default) matches torch (cosine >= 0.9999 per vector, tested). ``precision="int8"``
is opt-in: dynamic int8 quantisation of the weight matrices (see :mod:`.onnx` and
:mod:`.openvino` for the per-operator choices). The store fingerprint does not change with
the runtime or the precision: it names the embedding space (model, weights, preprocessing),
and int8 vectors stay in that space (cosine >= 0.999 to fp32 measured, the same standing as
fp16 autocast on CUDA), so a store written with one runtime can be searched with another.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from langchain_image_embeddings.errors import EncoderError

if TYPE_CHECKING:
    import os

    import torch

    from langchain_image_embeddings.encoders.base import ImageEncoder
    from langchain_image_embeddings.encoders.runtimes.cache import CacheEntry
    from langchain_image_embeddings.encoders.towers import TextTower, TowerExport

__all__ = [
    "EMBEDDING_PRECISIONS",
    "RUNTIMES",
    "EmbeddingPrecision",
    "ExportedRuntime",
    "Runtime",
    "check_runtime",
    "with_runtime",
]


Runtime = Literal["torch", "onnx", "openvino"]
"""Where the forward pass runs: eager PyTorch, ONNX Runtime (CPU) or OpenVINO (CPU)."""
RUNTIMES: tuple[str, ...] = get_args(Runtime)

EmbeddingPrecision = Literal["auto", "fp32", "fp16", "bf16", "int8"]
"""The torch precisions plus ``"int8"`` (dynamic quantisation; ONNX Runtime / OpenVINO)."""
EMBEDDING_PRECISIONS: tuple[str, ...] = get_args(EmbeddingPrecision)


def check_runtime(runtime: str, precision: str, device: str) -> None:
    """Reject combinations that cannot run, naming what to change.

    Raises:
        EncoderError: Unknown runtime or precision; int8 with the torch runtime; half
            precision or a non-CPU device with an exported runtime.

    Example:
        >>> check_runtime("onnx", "int8", "cpu")   # fine
        >>> check_runtime("torch", "int8", "cpu")
        Traceback (most recent call last):
        ...
        langchain_image_embeddings.errors.EncoderError: precision='int8' needs runtime='onnx' or 'openvino' ...
    """
    if runtime not in RUNTIMES:
        raise EncoderError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if precision not in EMBEDDING_PRECISIONS:
        raise EncoderError(
            f"unknown precision {precision!r}; choose one of {', '.join(EMBEDDING_PRECISIONS)}"
        )
    if runtime == "torch":
        if precision == "int8":
            raise EncoderError(
                "precision='int8' needs runtime='onnx' or 'openvino' (dynamic int8 "
                "quantisation of an exported model); eager torch runs fp32, fp16 or bf16"
            )
        return
    if precision in ("fp16", "bf16"):
        raise EncoderError(
            f"runtime={runtime!r} runs fp32 or int8 on the CPU, not precision={precision!r}; "
            "use precision='fp32' (default) or 'int8', or runtime='torch' for half precision"
        )
    if device != "cpu":
        raise EncoderError(
            f"runtime={runtime!r} runs on the CPU only, not on device={device!r}; use "
            "device='cpu', or runtime='torch' on a GPU"
        )


class ExportedRuntime:
    """An encoder's towers exported to ONNX and run by ONNX Runtime or OpenVINO.

    Sessions are built on first use: the image tower at the first ``encode_images``, the
    text tower at the first ``encode_texts``. Each export is looked up in the cache first
    (key: the encoder fingerprint, a hash of its weights, the input shape/dtype, the
    precision and the exporter/runtime versions) and built only when missing or corrupt.

    Args:
        encoder: The (loaded or loadable) encoder whose torch module is exported.
        runtime: ``"onnx"`` or ``"openvino"``.
        precision: ``"fp32"`` or ``"int8"`` (``"auto"`` means fp32).
        cache_dir: The export cache (default: ``$IMGEMB_CACHE_DIR`` or the XDG cache).
        threads: Intra-op threads (default: ``torch.get_num_threads()``).

    Example:
        .. code-block:: python

            from langchain_image_embeddings import create_encoder
            from langchain_image_embeddings.encoders.runtimes import with_runtime

            encoder = with_runtime(create_encoder("timm:efficientnet_lite0"), "onnx")
            features = encoder.encode_images(pixels)   # a torch tensor, as with torch
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        runtime: str,
        *,
        precision: str = "fp32",
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,
    ) -> None:
        check_runtime(runtime, precision, "cpu")
        if runtime == "torch":
            raise EncoderError("ExportedRuntime runs 'onnx' or 'openvino'; torch needs none")
        # Fail at construction, before any export, when the runtime is not installed.
        if runtime == "onnx":
            from langchain_image_embeddings.encoders.runtimes import onnx as ort_runtime

            ort_runtime.require_onnxruntime()
        else:
            from langchain_image_embeddings.encoders.runtimes import openvino as ov_runtime

            ov_runtime.require_openvino()
        self.encoder = encoder
        self.name = runtime
        self.precision = "int8" if precision == "int8" else "fp32"
        self.cache_dir = cache_dir
        self.threads = threads
        #: The cache entries this runtime loaded or built, by tower (and ``-int8``).
        self.entries: dict[str, CacheEntry] = {}
        self._sessions: dict[str, Any] = {}
        self._text: TextTower | None = None
        self._text_checked = False
        self._state: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ExportedRuntime({self.name!r}, precision={self.precision!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Native sessions and locks cannot be pickled: a copy opens its sessions again from
        # the export cache on first use (no re-export).
        state = dict(self.__dict__)
        state["_sessions"] = {}
        state["_text"], state["_text_checked"] = None, False  # a closure: found again
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- inference ---------------------------------------------------------------------------
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features ``(N, dim)`` for a preprocessed batch, as a CPU float tensor."""
        import torch

        session = self._session("image", self.encoder.export_image_tower)
        array = pixels.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run(array))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor | None:
        """Text features ``(N, dim)``, or ``None`` when the text tower cannot be exported
        (the encoder then runs its torch text tower: same vectors, eager speed)."""
        import torch

        tower = self._text_tower()
        if tower is None:
            return None
        session = self._session("text", lambda: tower.export)
        tokens = tower.tokenize(texts)
        if tower.trim:
            # Causal mask: positions after the longest text's end never affect the output.
            length = max(1, int((tokens != 0).sum(dim=1).max()))
            tokens = tokens[:, :length]
        return torch.from_numpy(session.run(tokens.to(torch.int64).contiguous().numpy()))

    # -- building ----------------------------------------------------------------------------
    def _text_tower(self) -> TextTower | None:
        if not self._text_checked:
            self._text = self.encoder.export_text_tower()
            self._text_checked = True
        return self._text

    def _session(self, tower: str, spec: Any) -> Any:
        session = self._sessions.get(tower)
        if session is not None:
            return session
        with self._lock:
            if tower not in self._sessions:
                self._sessions[tower] = self._build(tower, spec())
            return self._sessions[tower]

    def _build(self, tower: str, spec: TowerExport) -> Any:
        import torch

        from langchain_image_embeddings.encoders.runtimes import export as ex
        from langchain_image_embeddings.encoders.runtimes.cache import ExportCache, key_digest

        encoder = self.encoder
        encoder.load()
        if self._state is None:
            self._state = ex.state_hash(encoder.module)
        cache = ExportCache(self.cache_dir)
        key = {
            "kind": "onnx-export",
            "fingerprint": encoder.fingerprint(),
            "weights_hash": self._state,
            "input": spec.describe(),
            "versions": ex.exporter_versions(),
        }
        entry = cache.get_or_build(key, lambda folder: ex.export_onnx(spec, folder))
        self.entries[tower] = entry
        path = entry.path / ex.ONNX_FILE
        threads = self.threads or torch.get_num_threads()
        if self.name == "onnx":
            from langchain_image_embeddings.encoders.runtimes import onnx as ort_runtime

            if self.precision == "int8":
                reduce_range = ort_runtime.int8_saturates()
                int8_key: dict[str, Any] = {
                    "kind": "onnxruntime-int8",
                    "parent": key_digest(key),
                    "onnxruntime": ort_runtime.runtime_version(),
                    "ops": list(ort_runtime.INT8_OP_TYPES),
                    "reduce_range": reduce_range,
                }
                source = path
                int8 = cache.get_or_build(
                    int8_key,
                    lambda folder: ort_runtime.quantize_int8(
                        source, folder, reduce_range=reduce_range
                    ),
                )
                self.entries[f"{tower}-int8"] = int8
                path = int8.path / ort_runtime.INT8_FILE
            return ort_runtime.OnnxSession(path, threads=threads)
        from langchain_image_embeddings.encoders.runtimes import openvino as ov_runtime

        if self.precision == "int8":
            int8_key = {
                "kind": "openvino-int8",
                "parent": key_digest(key),
                "openvino": ov_runtime.runtime_version(),
                "group_size": ov_runtime.DYNAMIC_QUANTIZATION_GROUP_SIZE,
            }
            source = path
            int8 = cache.get_or_build(
                int8_key, lambda folder: ov_runtime.compress_int8(source, folder)
            )
            self.entries[f"{tower}-int8"] = int8
            path = int8.path / ov_runtime.INT8_FILE
        return ov_runtime.OpenVinoSession(path, threads=threads, int8=self.precision == "int8")


def with_runtime(
    encoder: ImageEncoder,
    runtime: str = "torch",
    *,
    precision: str = "fp32",
    cache_dir: str | os.PathLike[str] | Path | None = None,
    threads: int | None = None,
    share: bool = True,
) -> ImageEncoder:
    """``encoder`` answering ``encode_images`` / ``encode_texts`` from ``runtime``.

    Args:
        encoder: Any encoder.
        runtime: ``"torch"`` (returns ``encoder`` unchanged), ``"onnx"`` or ``"openvino"``.
        precision: ``"fp32"``/``"auto"`` or ``"int8"``.
        cache_dir: The export cache folder.
        threads: Intra-op threads (default: torch's).
        share: Attach the runtime to a shallow copy sharing the loaded module, so the
            caller's encoder object keeps running torch (``False``: attach in place).

    Raises:
        EncoderError: An impossible combination (see :func:`check_runtime`).

    Example:
        .. code-block:: python

            from langchain_image_embeddings import create_encoder
            from langchain_image_embeddings.encoders.runtimes import with_runtime

            onnx_encoder = with_runtime(create_encoder("timm:efficientnet_lite0"), "onnx")
            print(onnx_encoder.runtime)   # "onnx"
    """
    check_runtime(runtime, precision, encoder.device)
    if runtime == "torch":
        return encoder
    target = encoder
    if share:
        encoder.load()  # the copy must share the built module, not build its own
        target = copy.copy(encoder)
    target._runtime = ExportedRuntime(
        target, runtime, precision=precision, cache_dir=cache_dir, threads=threads
    )
    return target
