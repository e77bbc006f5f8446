"""Subprocess of ``test_runtimes.py``: export (or load) the tiny CLIP image tower with ONNX
Runtime into a given cache and report, as one JSON line, whether this process exported.

Usage: ``python runtime_export_worker.py CACHE_DIR CONFIG_DIR [SLOW_EXPORT_SECONDS]``. A
positive third argument makes the export sleep first, so two processes started together
surely overlap inside the export.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    cache_dir, config_dir = sys.argv[1], sys.argv[2]
    slow = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    import open_clip
    import torch

    from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder
    from langchain_image_embeddings.encoders.runtimes import export, with_runtime

    torch.set_num_threads(1)
    open_clip.add_model_config(config_dir)
    if slow > 0:
        real_export = export.export_onnx

        def slow_export(spec: export.TowerExport, folder: object) -> object:
            time.sleep(slow)
            return real_export(spec, folder)  # type: ignore[arg-type]

        export.export_onnx = slow_export  # type: ignore[assignment]
    torch.manual_seed(0)  # the same weights as the test's tiny CLIP fixture
    encoder = OpenCLIPEncoder("lie-tiny-clip", pretrained=None, allow_random_weights=True)
    onnx_encoder = with_runtime(encoder, "onnx", cache_dir=cache_dir)
    torch.manual_seed(1)
    features = onnx_encoder.encode_images(torch.randn(3, 3, 32, 32))
    entry = onnx_encoder._runtime.entries["image"]  # type: ignore[union-attr]
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "built": entry.built,
                "exports": export.EXPORTS["count"],
                "entry": str(entry.path),
                "manifest_pid": entry.manifest["pid"],
                "features": features.tolist(),
            }
        )
    )


if __name__ == "__main__":
    main()
