"""ONNX Runtime on CPU: sessions over exported models, and dynamic int8 quantisation.

Threads: ``intra_op_num_threads`` is torch's thread count (what the eager model would use),
one inter-op thread (the graph is a chain), and no spin-waiting between ops: the decode
threads of the pipeline need the same cores while the model runs.

int8: ``onnxruntime.quantization.quantize_dynamic`` on ``MatMul`` / ``Gemm`` only, weights
int8 per output channel, activations quantised per batch at run time. Convolutions are left
in fp32: ORT's ``ConvInteger`` has no fast CPU kernel and costs accuracy for no speed, so a
pure conv net (EfficientNet-Lite0, a ResNet) runs as fp32 under ``precision="int8"``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from langchain_image_embeddings._optional import require

logger = logging.getLogger(__name__)

#: Operators :func:`quantize_int8` quantises (per-op choice, see the module docstring).
INT8_OP_TYPES: tuple[str, ...] = ("MatMul", "Gemm")
INT8_FILE = "model.onnx"


def _import() -> Any:
    """``onnxruntime``, or an ImportError naming the ``[onnx]`` extra."""
    return require("onnxruntime", "onnxruntime")


def runtime_version() -> str:
    """The installed ONNX Runtime version (part of the int8 cache key)."""
    return str(_import().__version__)


def quantize_int8(source: Path, folder: Path) -> None:
    """Write a dynamically int8-quantised copy of the ONNX model ``source`` into ``folder``."""
    _import()
    # ORT's quantizer logs advice about static pre-processing on the root logger; it does
    # not apply to dynamic quantisation and would reach every CLI user's terminal.
    root = logging.getLogger()
    quiet = _DropRecords()
    root.addFilter(quiet)
    try:
        _quantize(source, folder)
    finally:
        root.removeFilter(quiet)


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _quantize(source: Path, folder: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        folder / INT8_FILE,
        op_types_to_quantize=list(INT8_OP_TYPES),
        per_channel=True,
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
        onnxruntime = _import()
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
