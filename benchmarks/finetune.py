"""Fine-tuning benchmark: held-out recall before and after training, measured.

1. Triplet loss, projection head on the real EfficientNet-Lite0 ImageNet weights
   (``timm:efficientnet_lite0``), handwritten digits from ``sklearn.datasets.load_digits``
   upsampled to 64x64 RGB: image-to-image recall@1/@5 by label on held-out digits.
   Optionally (``--partial``) the same with the last blocks unfrozen.
2. InfoNCE, a tiny CLIP (``tests/tiny_clip.json``, random init) trained in full on generated
   captioned shapes ("a red circle on the left"): text-to-image recall@1/@5 on unseen images.

The validation split is never used to pick an epoch (``restore_best=False``): "after" is the
last epoch's model. Run::

    python benchmarks/finetune.py                 # CPU, a few minutes
    python benchmarks/finetune.py --device cuda   # with autocast on CUDA
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langchain_image_embeddings.encoders import create_encoder  # noqa: E402
from langchain_image_embeddings.training import fit  # noqa: E402
from langchain_image_embeddings.training.toy_data import captioned_shapes, digit_images  # noqa: E402


def _row(task: str, result: Any, seconds: float, chance: float | None = None) -> dict[str, Any]:
    last = result.history[-1]
    return {
        "task": task,
        "train": result.extra["train_size"],
        "val": result.extra["val_size"],
        "epochs": len(result.history),
        "before_r1": round(result.baseline["recall_at_1"], 3),
        "after_r1": round(last.recall_at_1, 3),
        "before_r5": round(result.baseline["recall_at_5"], 3),
        "after_r5": round(last.recall_at_5, 3),
        "chance_r1": None if chance is None else round(chance, 3),
        "seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--digits-per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--shapes-per-combo", type=int, default=8)
    parser.add_argument("--clip-epochs", type=int, default=40)
    parser.add_argument("--partial", action="store_true", help="also run Lite0 partial mode")
    parser.add_argument("--skip-lite0", action="store_true")
    parser.add_argument("--skip-clip", action="store_true")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    rows: list[dict[str, Any]] = []

    if not args.skip_lite0:
        train, val = digit_images(args.digits_per_class).split(val_fraction=0.5, seed=0)
        encoder = create_encoder("timm:efficientnet_lite0", device=device)
        common = dict(restore_best=False, show_progress=False, batch_size=40)
        for mining in ("semihard", "hard", "all"):
            started = time.perf_counter()
            result = fit(encoder, train, val, loss="triplet", mode="head", mining=mining,
                         epochs=args.epochs, **common)  # fmt: skip
            rows.append(
                _row(f"lite0 head triplet/{mining} digits", result, time.perf_counter() - started)
            )
        if args.partial:
            started = time.perf_counter()
            result = fit(encoder, train, val, loss="triplet", mode="partial", unfreeze_blocks=1,
                         epochs=max(1, args.epochs // 4), flip=False, **common)  # fmt: skip
            rows.append(
                _row("lite0 partial(1) triplet digits", result, time.perf_counter() - started)
            )

    if not args.skip_clip:
        import open_clip

        config_dir = Path(tempfile.mkdtemp())
        shutil.copy(ROOT / "tests" / "tiny_clip.json", config_dir / "lie-tiny-clip.json")
        open_clip.add_model_config(config_dir)
        torch.manual_seed(0)
        clip = create_encoder(
            "open_clip:lie-tiny-clip", pretrained=None, allow_random_weights=True, device=device
        )
        train_pairs = captioned_shapes(args.shapes_per_combo, seed=0)
        val_pairs = captioned_shapes(1, seed=1)
        started = time.perf_counter()
        result = fit(clip, train_pairs, val_pairs, loss="infonce", mode="full",
                     epochs=args.clip_epochs, batch_size=32, lr=1e-3, augment=False,
                     restore_best=False, show_progress=False)  # fmt: skip
        rows.append(
            _row(
                "tiny CLIP full infonce shapes (text->image)",
                result,
                time.perf_counter() - started,
                chance=1 / len(val_pairs),
            )
        )

    print(f"device: {device}  torch {torch.__version__}  threads {torch.get_num_threads()}")
    header = (
        "task",
        "train",
        "val",
        "epochs",
        "before_r1",
        "after_r1",
        "before_r5",
        "after_r5",
        "chance_r1",
        "seconds",
    )
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[h]) for h in header))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
