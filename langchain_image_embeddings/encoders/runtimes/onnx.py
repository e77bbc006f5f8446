"""ONNX Runtime on CPU: sessions over exported models, and dynamic int8 quantisation.

Threads: ``intra_op_num_threads`` is torch's thread count (what the eager model would use),
one inter-op thread (the graph is a chain), and no spin-waiting between ops: the decode
threads of the pipeline need the same cores while the model runs.

int8: ``onnxruntime.quantization.quantize_dynamic`` on ``MatMul`` / ``Gemm`` only, weights
int8 per output channel, activations quantised per batch at run time. On x86 CPUs without
VNNI (AVX2-only, AVX-512 without VNNI) ORT's u8s8 kernels add pairs of products in 16 bits
(``vpmaddubsw``), which saturate with full-range int8 weights: the tiny CLIP's text vectors
fell to cosine 0.983 to fp32 on such a machine. There the weights are quantised to 7 bits
(``reduce_range``), which cannot saturate (cosine 0.9997 on the same model); CPUs with VNNI
or AMX, and ARM, keep 8 bits. Convolutions are left
in fp32: ORT's ``ConvInteger`` has no fast CPU kernel and costs accuracy for no speed, so a
pure conv net (EfficientNet-Lite0, a ResNet) runs as fp32 under ``precision="int8"``.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np

from langchain_image_embeddings._optional import require
from langchain_image_embeddings.encoders.runtimes.cpu import cpu_flags as read_cpu_flags

__all__ = [
    "INT8_FILE",
    "INT8_OP_TYPES",
    "OnnxSession",
    "quantize_int8",
    "int8_saturates",
    "require_onnxruntime",
    "runtime_version",
]


logger = logging.getLogger(__name__)

#: Operators :func:`quantize_int8` quantises (per-op choice, see the module docstring).
INT8_OP_TYPES: tuple[str, ...] = ("MatMul", "Gemm")
INT8_FILE = "model.onnx"


def require_onnxruntime() -> Any:
    """``onnxruntime``, or an ImportError naming the ``[onnx]`` extra."""
    return require("onnxruntime", "onnxruntime")


def runtime_version() -> str:
    """The installed ONNX Runtime version (part of the int8 cache key)."""
    return str(require_onnxruntime().__version__)


def int8_saturates(cpu_flags: frozenset[str] | None = None) -> bool:
    """Whether full-range int8 weights can saturate ORT's int8 kernels on this CPU.

    True on x86 without VNNI or AMX (see the module docs); when the flags cannot be read on
    x86 (no ``/proc/cpuinfo``), True as well: 7-bit weights are safe everywhere.

    Args:
        cpu_flags: The CPU's feature flags (default: read from ``/proc/cpuinfo``).

    Example:
        >>> int8_saturates(frozenset({"avx2", "fma"}))
        True
        >>> int8_saturates(frozenset({"avx512f", "avx512_vnni"}))
        False
    """
    if cpu_flags is None:
        if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
            return False
        cpu_flags = read_cpu_flags()
        if cpu_flags is None:
            return True
    return not cpu_flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def quantize_int8(source: Path, folder: Path, *, reduce_range: bool = False) -> None:
    """Write a dynamically int8-quantised copy of the ONNX model ``source`` into ``folder``.

    Args:
        source: The fp32 ONNX model.
        folder: Where ``model.onnx`` is written.
        reduce_range: 7-bit weights (for CPUs where 8 bits saturate: :func:`int8_saturates`).
    """
    require_onnxruntime()
    # ORT's quantizer logs advice about static pre-processing on the root logger; it does
    # not apply to dynamic quantisation and would reach every CLI user's terminal.
    root = logging.getLogger()
    quiet = _DropRecords()
    root.addFilter(quiet)
    try:
        _quantize(source, folder, reduce_range)
    finally:
        root.removeFilter(quiet)


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _quantize(source: Path, folder: Path, reduce_range: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        folder / INT8_FILE,
        op_types_to_quantize=list(INT8_OP_TYPES),
        per_channel=True,
        reduce_range=reduce_range,
        weight_type=QuantType.QInt8,
        # Only weight matrices: attention's activation x activation products stay fp32.
        extra_options={"MatMulConstBOnly": True},
        use_external_data_format=source.with_name(source.name + ".data").exists(),
    )


class OnnxSession:
    """One ONNX Runtime CPU session over an exported tower.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (``torch.get_num_threads()`` by default upstream).
        spin: Let idle ORT threads spin-wait between ops (off: the cores go to decoding).

    Example:
        .. code-block:: python

            session = OnnxSession(Path("model.onnx"), threads=2)
            features = session.run(pixels.numpy())
    """

    def __init__(self, path: Path, *, threads: int, spin: bool = False) -> None:
        onnxruntime = require_onnxruntime()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spin)))
        options.log_severity_level = 3  # ORT warns about every unused initialiser
        self._session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Features for one batch (``float32`` pixels or ``int64`` tokens)."""
        output: np.ndarray = self._session.run(None, {self._input: inputs})[0]
        return output
