"""An encoder's towers exported to ONNX and run by ONNX Runtime or OpenVINO.

Example:
    .. code-block:: python

        from langchain_image_embeddings import create_encoder
        from langchain_image_embeddings.encoders.runtimes.exported import ExportedRuntime

        runtime = ExportedRuntime(create_encoder("timm:efficientnet_lite0"), "onnx")
        features = runtime.encode_images(pixels)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.encoders.runtimes.options import check_runtime
from langchain_image_embeddings.errors import EncoderError

if TYPE_CHECKING:
    import os

    import torch

    from langchain_image_embeddings.encoders.base import ImageEncoder
    from langchain_image_embeddings.encoders.runtimes.cache import CacheEntry
    from langchain_image_embeddings.encoders.towers import TextTower, TowerExport

__all__ = ["ExportedRuntime"]


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
        if runtime not in ("onnx", "openvino"):
            raise EncoderError(f"ExportedRuntime runs 'onnx' or 'openvino', not {runtime!r}")
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
