"""The ``finetune`` subcommand of ``imgemb`` (cli code: it prints and returns exit codes).

``imgemb finetune --data DIR_OR_CSV --model SPEC --loss triplet|infonce --mode head|partial|full
--out DIR`` trains, saves the model with ``save_pretrained`` and prints before/after recall.
The saved model is then usable everywhere as ``--model local:DIR``.

Exit codes: 0 success; 2 usage or data error; 3 model could not be loaded; 4 other error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from langchain_image_embeddings.cli import _json_object
from langchain_image_embeddings.exit_codes import (
    EXIT_ERROR,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
)

_EPILOG = """\
data: a directory of class folders (DIR/<label>/<image>) for metric learning, or a .csv /
.jsonl file with 'image' and 'caption' columns for CLIP-style training (needs --loss infonce
and a CLIP model). Example:
  imgemb finetune --data catalogue/ --model timm:efficientnet_lite0 --loss triplet \\
      --mode head --out catalogue-model
  imgemb embed photos/ --model local:catalogue-model
"""


def add_finetune_parser(subparsers: Any) -> None:
    """Add the ``finetune`` subcommand to an ``argparse`` sub-parser set.

    Args:
        subparsers: What ``parser.add_subparsers()`` returned. The new parser's
            ``func(args) -> int`` runs the command.

    Example:
        .. code-block:: python

            import argparse

            parser = argparse.ArgumentParser(prog="imgemb")
            add_finetune_parser(parser.add_subparsers(dest="command"))
            args = parser.parse_args(["finetune", "--data", "d/", "--out", "m/"])
            exit_code = args.func(args)
    """
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a model (triplet or InfoNCE) and save it for --model local:DIR",
        description="Fine-tune an encoder for retrieval and save it as safetensors + config.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="class-folder directory, or .csv/.jsonl pairs")
    p.add_argument(
        "--model",
        default="timm:efficientnet_lite0",
        metavar="SPEC",
        help="base encoder spec (default: timm:efficientnet_lite0)",
    )
    p.add_argument("--loss", choices=("triplet", "infonce"), default=None,
                   help="default: triplet for folders, infonce for caption files")  # fmt: skip
    p.add_argument(
        "--mode",
        choices=("head", "partial", "full"),
        default="head",
        help="train a projection head only (default), the last blocks too, or every weight",
    )
    p.add_argument("--out", required=True, help="directory to write the fine-tuned model to")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    p.add_argument("--batch-size", type=int, default=32, help="items per step (default: 32)")
    p.add_argument("--lr", type=float, default=None, help="default depends on --mode")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument("--embedding-dim", type=int, default=None, help="projection head size")
    p.add_argument("--unfreeze-blocks", type=int, default=2, help="blocks trained in partial mode")
    p.add_argument("--margin", type=float, default=0.2, help="triplet margin (default: 0.2)")
    p.add_argument("--distance", choices=("euclidean", "cosine"), default="euclidean",
                   help="triplet distance (default: euclidean)")  # fmt: skip
    p.add_argument("--mining", choices=("all", "hard", "semihard"), default="semihard",
                   help="which triplets of a batch train (default: semihard)")  # fmt: skip
    p.add_argument("--temperature", type=float, default=0.07,
                   help="InfoNCE temperature of a head (default: 0.07)")  # fmt: skip
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of each class (or of the pairs) held out to measure recall@k (default: 0.2)",
    )
    p.add_argument("--patience", type=int, default=None, help="early stopping (epochs)")
    p.add_argument("--no-augment", action="store_true", help="no crop/flip/colour jitter")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument(
        "--pretrained",
        default=None,
        help="weights tag/path of the base model; 'none' starts from random weights",
    )
    p.add_argument(
        "--model-kwargs",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="options of the base encoder as a JSON object (--pretrained overrides its "
        '"pretrained")',
    )
    p.add_argument("--image-column", default="image", help="caption files: image column")
    p.add_argument("--caption-column", default="caption", help="caption files: caption column")
    p.add_argument("--metrics-json", default=None, help="also write per-epoch metrics here")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--progress", action="store_true", help="show the progress bar even off a terminal"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    """Run ``finetune`` from parsed arguments; returns the exit code."""
    from langchain_image_embeddings.errors import (
        EncoderError,
        ImageEmbeddingsError,
        MissingDependencyError,
        WeightsNotFoundError,
    )

    try:
        from langchain_image_embeddings.training.data import CaptionedImages, LabeledImages
        from langchain_image_embeddings.training.fit import FitConfig, LossName, check_classes, fit
    except ImportError as exc:  # pragma: no cover - torch missing
        print(f"error: fine-tuning needs torch: {exc}", file=sys.stderr)
        return EXIT_MODEL

    source = Path(args.data).expanduser()
    data: LabeledImages | CaptionedImages
    try:
        if source.is_dir():
            data = LabeledImages.from_folder(source)
        elif source.is_file():
            data = CaptionedImages.from_file(
                source, image_column=args.image_column, caption_column=args.caption_column
            )
        else:
            print(f"error: --data {source} is neither a directory nor a file", file=sys.stderr)
            return EXIT_USAGE
        loss: LossName = args.loss or (
            "infonce" if isinstance(data, CaptionedImages) else "triplet"
        )
        if isinstance(data, LabeledImages):
            check_classes(data, loss)
        train, val = data.split(args.val_fraction, seed=args.seed)
        config = FitConfig(
            loss=loss,
            mode=args.mode,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            embedding_dim=args.embedding_dim,
            unfreeze_blocks=args.unfreeze_blocks,
            margin=args.margin,
            distance=args.distance,
            mining=args.mining,
            temperature=args.temperature,
            patience=args.patience,
            augment=not args.no_augment,
            flip=not args.no_flip,
            seed=args.seed,
            show_progress=not args.quiet and (args.progress or sys.stderr.isatty()),
            metrics_path=args.metrics_json,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    try:
        from langchain_image_embeddings.devices import resolve_device
        from langchain_image_embeddings.encoders import create_encoder

        kwargs: dict[str, Any] = {
            **(args.model_kwargs or {}),
            "device": resolve_device(args.device),
        }
        if args.pretrained is not None and args.pretrained.lower() == "none":
            kwargs.update(pretrained=None, allow_random_weights=True)
        elif args.pretrained is not None:
            kwargs["pretrained"] = args.pretrained
        encoder = create_encoder(args.model, **kwargs)
        encoder.load()
    except (EncoderError, WeightsNotFoundError, MissingDependencyError, ValueError) as exc:
        print(f"error: cannot load {args.model}: {exc}", file=sys.stderr)
        return EXIT_MODEL

    try:
        result = fit(encoder, train, val, config)  # an empty val: "not measurable", said so
        out = result.save_pretrained(args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImageEmbeddingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR

    best = next((m for m in result.history if m.epoch == result.best_epoch), result.history[-1])
    not_measurable = result.extra.get("recall_not_measurable")
    before_recall: dict[str, float | None] = dict(result.baseline) or {
        "recall_at_1": None,
        "recall_at_5": None,
    }
    summary = {
        "model": f"local:{out}",
        "base": args.model,
        "loss": loss,
        "mode": args.mode,
        "train": len(train),
        "val": len(val),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "before": before_recall,
        "after": {"recall_at_1": best.recall_at_1, "recall_at_5": best.recall_at_5},
        "recall_not_measurable": not_measurable,
        "dim": result.encoder.dim,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        before = result.baseline.get("recall_at_1")
        print(
            f"fine-tuned {args.model} ({loss}, {args.mode}) on {len(train)} items, "
            f"{len(result.history)} epochs; saved to {out}"
        )
        if not_measurable:
            print(f"validation recall@1: not measurable: {not_measurable}")
        elif before is not None and best.recall_at_1 is not None:
            print(
                f"validation recall@1: {before:.3f} -> {best.recall_at_1:.3f}   "
                f"recall@5: {result.baseline['recall_at_5']:.3f} -> {best.recall_at_5:.3f}"
            )
        print(f"use it with: --model local:{out}")
    return EXIT_OK
