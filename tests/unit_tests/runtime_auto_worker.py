"""Subprocess of ``test_runtimes_auto.py``: embed with ``runtime="auto"`` deciding at the first
batch, and report as one JSON line what this process decided and how.

Usage: ``python runtime_auto_worker.py CACHE_DIR CONFIG_DIR THREADS`` (``CONFIG_DIR`` holds
``auto-tiny-clip.json``, the tiny open_clip architecture of the tests). The exported runtimes are
replaced by in-process doubles (an ONNX export costs tens of seconds on a busy 2-core
machine; ``test_runtimes.py`` covers the real ones): "onnx" answers with torch's own vectors
at once after its first call, "openvino" 60 ms later, and torch is slowed by 30 ms, so
"onnx" wins the measurement every time. What is under test is the choice, its storage and its reuse across processes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, ClassVar


def main() -> None:
    cache_dir, config_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.environ["IMGEMB_CACHE_DIR"] = cache_dir
    os.environ["IMGEMB_AUTO_RUNTIME_AFTER_S"] = "0"
    import warnings

    import numpy as np
    import open_clip
    import torch

    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.encoders.runtimes import auto, choice, exported

    torch.set_num_threads(threads)
    open_clip.add_model_config(config_dir)
    auto.MIN_PARAMETERS = 0  # the tiny model may be measured
    builds: list[str] = []
    measured: list[int] = []

    real_torch = choice.torch_forward

    def slow_torch(encoder: Any, pixels: torch.Tensor) -> torch.Tensor:
        time.sleep(0.03)  # "onnx" must win by a mile however loaded the machine
        return real_torch(encoder, pixels)

    class Double:
        delay: ClassVar[dict[str, float]] = {"onnx": 0.0, "openvino": 0.06}

        def __init__(self, encoder: Any, runtime: str, **_: Any) -> None:
            self.encoder, self.name = encoder, runtime
            self._seen: dict[tuple[int, ...], torch.Tensor] = {}
            builds.append(runtime)

        def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
            time.sleep(self.delay[self.name])
            key = (pixels.data_ptr(), *pixels.shape)
            if key not in self._seen:
                with torch.no_grad():
                    self._seen[key] = self.encoder.forward_images(pixels)
            return self._seen[key]

    real_measure = choice.measure_runtimes

    def counting_measure(*args: Any, **kwargs: Any) -> Any:
        measured.append(1)
        return real_measure(*args, **kwargs)

    exported.ExportedRuntime = Double  # type: ignore[misc,assignment]
    choice.measure_runtimes = counting_measure  # type: ignore[assignment]
    choice.torch_forward = slow_torch  # type: ignore[assignment]
    embeddings = ImageEmbeddings(
        "open_clip:auto-tiny-clip",
        model_kwargs={"pretrained": None, "allow_random_weights": True},
        device="cpu",
        batch_size=4,
        num_workers=0,
    )
    images = [np.full((48, 40, 3), v, dtype=np.uint8) for v in (10, 90, 170, 250)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embeddings.embed_images_array(images)
    report = embeddings.runtime_report()
    assert report.measurement is not None
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "active": report.active,
                "source": report.measurement.source,
                "entry": report.measurement.entry,
                "measured": len(measured),
                "builds": builds,
                "warnings": [str(w.message) for w in caught],
            }
        )
    )


if __name__ == "__main__":
    main()
