"""OpenVINO on CPU: compiled models over exported ONNX files, and int8 weight compression.

Settings, measured on this project's 2-core machine (ViT-B/32, batch 32):

* ``PERFORMANCE_HINT=LATENCY`` (one stream using every thread): about 2x the rate of
  ``THROUGHPUT``, which splits the cores into streams that only pay off with several
  requests in flight; the pipeline runs one batch at a time.
* ``INFERENCE_NUM_THREADS`` = torch's thread count.
* ``INFERENCE_PRECISION_HINT=f32``: OpenVINO silently computes in bf16 on CPUs with
  AVX512-BF16/AMX (this one has it), which breaks the fp32 contract (cosine >= 0.9999 to
  torch per vector); fp32 means fp32.

int8: the weights of every ``MatMul`` with a constant 2-D weight are stored as int8 with a
per-output-channel fp32 scale (the "compressed weights" pattern OpenVINO's CPU plugin runs
with int8 kernels), and activations are quantised dynamically in groups of
:data:`DYNAMIC_QUANTIZATION_GROUP_SIZE`. Convolutions stay fp32 (the CPU plugin has no
weight-compressed convolution), so a pure conv net runs as fp32 under ``precision="int8"``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from langchain_image_embeddings._optional import require

__all__ = [
    "DYNAMIC_QUANTIZATION_GROUP_SIZE",
    "INT8_FILE",
    "OpenVinoSession",
    "compress_int8",
    "require_openvino",
    "runtime_version",
]


#: Files of an int8 entry (OpenVINO IR).
INT8_FILE = "model.xml"
#: Activation group size of OpenVINO's dynamic quantisation of int8-weight layers.
DYNAMIC_QUANTIZATION_GROUP_SIZE = 32


def require_openvino() -> Any:
    """``openvino``, or an ImportError naming the ``[openvino]`` extra."""
    return require("openvino", "openvino")


def runtime_version() -> str:
    """The installed OpenVINO version (part of the int8 cache key)."""
    return str(require_openvino().get_version())


def compress_int8(source: Path, folder: Path) -> int:
    """Write ``source`` (ONNX) as OpenVINO IR with int8 ``MatMul`` weights into ``folder``.

    Returns:
        The number of weight matrices compressed.
    """
    ov = require_openvino()
    import openvino.opset13 as ops

    model = ov.Core().read_model(str(source))
    compressed = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "MatMul":
            continue
        weight_node = node.input_value(1).get_node()
        if weight_node.get_type_name() != "Constant":
            continue
        weight = np.asarray(weight_node.get_data(), dtype=np.float32)
        if weight.ndim != 2:
            continue
        # Symmetric per-output-channel scale: reduce over the input dimension.
        transpose_b = bool(node.get_attributes().get("transpose_b", False))
        reduce_axis = 1 if transpose_b else 0
        scale = np.abs(weight).max(axis=reduce_axis, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        quantized = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        restored = ops.multiply(
            ops.convert(ops.constant(quantized), "f32"), ops.constant(scale.astype(np.float32))
        )
        node.input(1).replace_source_output(restored.output(0))
        compressed += 1
    ov.save_model(model, str(folder / INT8_FILE), compress_to_fp16=False)
    return compressed


class OpenVinoSession:
    """One OpenVINO CPU compiled model over an exported tower (ONNX or IR).

    Args:
        path: The ``.onnx`` or ``.xml`` file.
        threads: Inference threads.
        int8: Enable dynamic activation quantisation (for int8-weight models).
        hint: OpenVINO ``PERFORMANCE_HINT`` (``"LATENCY"``: one stream, see the module doc).

    Example:
        .. code-block:: python

            session = OpenVinoSession(Path("model.onnx"), threads=2)
            features = session.run(pixels.numpy())
    """

    def __init__(
        self, path: Path, *, threads: int, int8: bool = False, hint: str = "LATENCY"
    ) -> None:
        ov = require_openvino()
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": hint,
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "f32",
        }
        if int8:
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = str(DYNAMIC_QUANTIZATION_GROUP_SIZE)
        self._compiled = ov.Core().compile_model(str(path), "CPU", config)
        self._request = self._compiled.create_infer_request()
        # One infer request is not safe to share between threads.
        self._lock = threading.Lock()

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Features for one batch (``float32`` pixels or ``int64`` tokens)."""
        with self._lock:
            result = self._request.infer({0: inputs})
            return np.array(result[self._compiled.output(0)], copy=True)
