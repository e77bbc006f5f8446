"""CPU runtimes behind the encoders: eager torch, ONNX Runtime, OpenVINO.

An encoder keeps its torch module (training, ``forward_images``, fingerprints, the pipeline's
preprocessing); :func:`with_runtime` attaches an :class:`ExportedRuntime` that answers
``encode_images`` / ``encode_texts`` from a model exported once to ONNX and cached on disk
(:mod:`~langchain_image_embeddings.encoders.runtimes.cache`). The pipeline is unchanged: it
calls ``encoder.encode_images(pixels)`` and gets a tensor back.

``runtime="auto"`` (:mod:`.auto`, the default of ``ImageEmbeddings``) runs torch until a
workload proves big, then the runtime measured fastest on this machine (:mod:`.choice`:
fp32 only, vectors equal to torch's, the choice remembered in the cache per model and CPU).

fp32 (the default) matches torch (cosine >= 0.9999 per vector, tested). ``precision="int8"``
is opt-in: dynamic int8 quantisation of the weight matrices (see :mod:`.onnx` and
:mod:`.openvino` for the per-operator choices). The store fingerprint does not change with
the runtime or the precision: it names the embedding space (model, weights, preprocessing),
and int8 vectors stay in that space (cosine >= 0.999 to fp32 measured, the same standing as
fp16 autocast on CUDA), so a store written with one runtime can be searched with another.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_image_embeddings.encoders.runtimes.auto import AutoRuntime, RuntimeReport
from langchain_image_embeddings.encoders.runtimes.exported import ExportedRuntime
from langchain_image_embeddings.encoders.runtimes.options import (
    EMBEDDING_PRECISIONS,
    RUNTIME_CHOICES,
    RUNTIMES,
    EmbeddingPrecision,
    Runtime,
    RuntimeChoice,
    check_runtime,
)
from langchain_image_embeddings.errors import EncoderError

if TYPE_CHECKING:
    import os

    from langchain_image_embeddings.encoders.base import ImageEncoder

__all__ = [
    "EMBEDDING_PRECISIONS",
    "RUNTIMES",
    "RUNTIME_CHOICES",
    "AutoRuntime",
    "EmbeddingPrecision",
    "ExportedRuntime",
    "Runtime",
    "RuntimeChoice",
    "RuntimeReport",
    "check_runtime",
    "with_runtime",
]


def with_runtime(
    encoder: ImageEncoder,
    runtime: str = "torch",
    *,
    precision: str = "fp32",
    cache_dir: str | os.PathLike[str] | Path | None = None,
    threads: int | None = None,
    share: bool = True,
    after_s: float | None = None,
) -> ImageEncoder:
    """``encoder`` answering ``encode_images`` / ``encode_texts`` from ``runtime``.

    Args:
        encoder: Any encoder.
        runtime: ``"torch"`` (returns ``encoder`` unchanged), ``"onnx"``, ``"openvino"``,
            or ``"auto"`` (an :class:`AutoRuntime`: torch until the workload is big, then
            the fastest fp32 runtime measured on this machine; CPU and fp32 only).
        precision: ``"fp32"``/``"auto"`` or ``"int8"``.
        cache_dir: The export cache folder.
        threads: Intra-op threads (default: torch's).
        share: Attach the runtime to a shallow copy sharing the loaded module, so the
            caller's encoder object keeps running torch (``False``: attach in place).
        after_s: ``"auto"`` only: model seconds before choosing (see :mod:`.auto`).

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
    if runtime == "auto" and (precision not in ("auto", "fp32") or encoder.device != "cpu"):
        raise EncoderError(
            f"runtime='auto' chooses among fp32 CPU runtimes; precision={precision!r} on "
            f"device={encoder.device!r} runs on torch: use runtime='torch'"
        )
    target = encoder
    if share:
        encoder.load()  # the copy must share the built module, not build its own
        target = copy.copy(encoder)
    if runtime == "auto":
        target._runtime = AutoRuntime(target, cache_dir=cache_dir, threads=threads, after_s=after_s)
    else:
        target._runtime = ExportedRuntime(
            target, runtime, precision=precision, cache_dir=cache_dir, threads=threads
        )
    return target
