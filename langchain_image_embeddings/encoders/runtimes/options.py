"""What can run where: the runtime and precision names, and the check of a combination.

Example:
    >>> from langchain_image_embeddings.encoders.runtimes.options import check_runtime
    >>> check_runtime("onnx", "fp32", "cpu")   # fine
"""

from __future__ import annotations

from typing import Literal, get_args

from langchain_image_embeddings.errors import EncoderError

__all__ = [
    "EMBEDDING_PRECISIONS",
    "RUNTIMES",
    "RUNTIME_CHOICES",
    "EmbeddingPrecision",
    "Runtime",
    "RuntimeChoice",
    "check_runtime",
]


Runtime = Literal["torch", "onnx", "openvino"]
"""Where the forward pass runs: eager PyTorch, ONNX Runtime (CPU) or OpenVINO (CPU)."""
RUNTIMES: tuple[str, ...] = get_args(Runtime)

RuntimeChoice = Literal["auto", "torch", "onnx", "openvino"]
"""A :data:`Runtime`, or ``"auto"``: chosen by measurement on this machine (see :mod:`.auto`)."""
RUNTIME_CHOICES: tuple[str, ...] = get_args(RuntimeChoice)

EmbeddingPrecision = Literal["auto", "fp32", "fp16", "bf16", "int8"]
"""The torch precisions plus ``"int8"`` (dynamic quantisation; ONNX Runtime / OpenVINO)."""
EMBEDDING_PRECISIONS: tuple[str, ...] = get_args(EmbeddingPrecision)


def check_runtime(runtime: str, precision: str, device: str) -> None:
    """Reject combinations that cannot run, naming what to change.

    ``"auto"`` runs torch wherever an exported runtime cannot (a GPU, half precision), so
    only int8 is refused with it: int8 changes the vectors and is never chosen for you.

    Raises:
        EncoderError: Unknown runtime or precision; int8 with the torch or auto runtime;
            half precision or a non-CPU device with an exported runtime.

    Example:
        >>> check_runtime("onnx", "int8", "cpu")   # fine
        >>> check_runtime("torch", "int8", "cpu")
        Traceback (most recent call last):
        ...
        langchain_image_embeddings.errors.EncoderError: precision='int8' needs runtime='onnx' or 'openvino' ...
    """
    if runtime not in RUNTIME_CHOICES:
        raise EncoderError(
            f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIME_CHOICES)}"
        )
    if precision not in EMBEDDING_PRECISIONS:
        raise EncoderError(
            f"unknown precision {precision!r}; choose one of {', '.join(EMBEDDING_PRECISIONS)}"
        )
    if runtime == "auto" and precision == "int8":
        raise EncoderError(
            "precision='int8' needs runtime='onnx' or 'openvino' (int8 changes the vectors, "
            "so runtime='auto' never chooses it: name the runtime to opt in)"
        )
    if runtime in ("torch", "auto"):
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
