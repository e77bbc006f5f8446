"""The ``finetune`` subcommand of ``imgemb`` (cli code: it prints and returns exit codes).

``imgemb finetune --data DIR_OR_CSV --model SPEC --loss triplet|infonce --mode head|partial|full
--out DIR`` trains, saves the model with ``save_pretrained`` and prints before/after recall.
The saved model is then usable everywhere as ``--model local:DIR``.

Exit codes: 0 success; 2 usage or data error; 3 model could not be loaded; 4 other error.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import shlex
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_image_embeddings.cli.common import json_object, show_progress
from langchain_image_embeddings.cli.exit_codes import (
    EXIT_ERROR,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
)
from langchain_image_embeddings.training.config import Dataset, FitConfig, FitResult, LossName

if TYPE_CHECKING:
    from langchain_image_embeddings.encoders.base import ImageEncoder

__all__ = ["add_finetune_parser", "fit_config_from_args", "run_finetune"]


_EPILOG = """\
data: a directory of class folders (DIR/<label>/<image>) for metric learning, or a .csv /
.jsonl file with 'image' and 'caption' columns for CLIP-style training (needs --loss infonce
and a CLIP model). Example:
  imgemb finetune --data catalogue/ --model timm:efficientnet_lite0 --loss triplet \\
      --mode head --out catalogue-model
  imgemb embed photos/ --model local:catalogue-model
"""


# FitConfig fields that are not flags of their own: ``--loss`` defaults from the data,
# the progress bar follows ``--quiet``/``--progress``, ``--metrics-json`` names the path.
_NOT_FLAGS = frozenset({"loss", "show_progress", "metrics_path"})
_FLAG_FIELDS = tuple(f.name for f in dataclasses.fields(FitConfig) if f.name not in _NOT_FLAGS)


def _field_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of a Google-style class docstring, as ``{name: text}``."""
    docs: dict[str, str] = {}
    lines = (inspect.getdoc(cls) or "").splitlines()
    inside, name = False, ""
    for line in lines:
        if line.strip() == "Attributes:":
            inside = True
            continue
        if not inside:
            continue
        if line and not line.startswith(" "):
            break  # the next section
        head = re.match(r"^    (\w+): (.*)$", line)
        if head:
            name = head.group(1)
            docs[name] = head.group(2).strip()
        elif name and line.strip():
            docs[name] += " " + line.strip()
    return {key: text.replace("``", "") for key, text in docs.items()}


def _add_fit_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`FitConfig` field: type, choices, default and help come from it."""
    hints = typing.get_type_hints(FitConfig)
    docs = _field_docs(FitConfig)
    defaults = FitConfig()
    for f in dataclasses.fields(FitConfig):
        if f.name in _NOT_FLAGS and f.name != "loss":
            continue
        default = None if f.name == "loss" else getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        shown = (
            " (default: triplet for a class folder, infonce for a caption file)"
            if f.name == "loss"
            else f" (default: {'none' if default is None else default})"
        )
        options: dict[str, Any] = {"default": default, "help": docs[f.name] + shown}
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        if hint is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is Literal:
            options["choices"] = typing.get_args(hint)
        elif typing.get_origin(hint) is tuple:
            options.update(type=float, nargs=2, metavar=("LOW", "HIGH"))
        else:
            scalar = args[0] if args else hint
            parse = _or_none(scalar) if optional else scalar
            options.update(
                type=parse, metavar=scalar.__name__.upper() + ("|none" if optional else "")
            )
        parser.add_argument(flag, **options)


def _or_none(scalar: type) -> typing.Callable[[str], Any]:
    """An argparse type for ``X | None`` fields: ``none`` gives ``None`` (e.g. no clipping)."""

    def parse(text: str) -> Any:
        return None if text.lower() == "none" else scalar(text)

    parse.__name__ = scalar.__name__  # argparse names the type in its error message
    return parse


def fit_config_from_args(args: argparse.Namespace, loss: str) -> FitConfig:
    """The :class:`FitConfig` that parsed ``finetune`` arguments describe."""
    values = {name: getattr(args, name) for name in _FLAG_FIELDS}
    values["crop_scale"] = tuple(values["crop_scale"])
    return FitConfig(
        **values,
        loss=loss,  # type: ignore[arg-type]  # FitConfig checks the value
        show_progress=show_progress(args),
        metrics_path=args.metrics_json,
    )


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
    p.add_argument("--out", required=True, help="directory to write the fine-tuned model to")
    _add_fit_config_flags(p)
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of each class (or of the pairs) held out to measure recall@k (default: 0.2)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument(
        "--pretrained",
        default=None,
        help="weights tag/path of the base model; 'none' starts from random weights",
    )
    p.add_argument(
        "--model-kwargs",
        type=json_object,
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
    from langchain_image_embeddings.errors import ImageEmbeddingsError

    try:
        from langchain_image_embeddings.training.loop import fit
    except ImportError as exc:  # pragma: no cover - torch missing
        print(f"error: fine-tuning needs torch: {exc}", file=sys.stderr)
        return EXIT_MODEL

    try:
        _check_out(Path(args.out).expanduser())
        loss, train, val = _read_data(args)
        config = fit_config_from_args(args, loss)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    encoder = _load_base_encoder(args)
    if encoder is None:
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
    _print_summary(args, result, loss, len(train), len(val), out)
    return EXIT_OK


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot become the model folder before training, not after.

    Raises:
        ValueError: ``out`` exists and is not a directory.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a directory to write the model to")


def _read_data(args: argparse.Namespace) -> tuple[str, Dataset, Dataset]:
    """The loss to train and the train / validation split of ``--data``.

    Raises:
        ValueError: ``--data`` is neither a folder nor a file, or has too few classes.
    """
    from langchain_image_embeddings.training.data import CaptionedImages, LabeledImages
    from langchain_image_embeddings.training.metrics import check_classes

    source = Path(args.data).expanduser()
    data: LabeledImages | CaptionedImages
    if source.is_dir():
        data = LabeledImages.from_folder(source)
    elif source.is_file():
        data = CaptionedImages.from_file(
            source, image_column=args.image_column, caption_column=args.caption_column
        )
    else:
        raise ValueError(f"--data {source} is neither a directory nor a file")
    loss: LossName = args.loss or ("infonce" if isinstance(data, CaptionedImages) else "triplet")
    if isinstance(data, LabeledImages):
        check_classes(data, loss)
    train, val = data.split(args.val_fraction, seed=args.seed)
    return loss, train, val


def _load_base_encoder(args: argparse.Namespace) -> ImageEncoder | None:
    """The base model of ``--model`` with its weights; ``None`` (said on stderr) if it fails."""
    from langchain_image_embeddings.devices import resolve_device
    from langchain_image_embeddings.encoders import create_encoder
    from langchain_image_embeddings.errors import (
        EncoderError,
        MissingDependencyError,
        WeightsNotFoundError,
    )

    kwargs: dict[str, Any] = {**(args.model_kwargs or {}), "device": resolve_device(args.device)}
    if args.pretrained is not None and args.pretrained.lower() == "none":
        kwargs.update(pretrained=None, allow_random_weights=True)
    elif args.pretrained is not None:
        kwargs["pretrained"] = args.pretrained
    try:
        encoder = create_encoder(args.model, **kwargs)
        encoder.load()
    except (EncoderError, WeightsNotFoundError, MissingDependencyError, ValueError) as exc:
        print(f"error: cannot load {args.model}: {exc}", file=sys.stderr)
        return None
    return encoder


def _print_summary(
    args: argparse.Namespace, result: FitResult, loss: str, n_train: int, n_val: int, out: Path
) -> None:
    """Before/after recall, as text or ``--json``."""
    best = next((m for m in result.history if m.epoch == result.best_epoch), result.history[-1])
    not_measurable = result.extra.get("recall_not_measurable")
    before_recall: dict[str, float | None] = dict(result.baseline) or {
        "recall_at_1": None,
        "recall_at_5": None,
    }
    spec = f"local:{Path(out).resolve()}"  # absolute: stores record it, and work from anywhere
    summary = {
        "model": spec,
        "base": args.model,
        "loss": loss,
        "mode": args.mode,
        "train": n_train,
        "val": n_val,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "before": before_recall,
        "after": {"recall_at_1": best.recall_at_1, "recall_at_5": best.recall_at_5},
        "recall_not_measurable": not_measurable,
        "dim": result.encoder.dim,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    before = result.baseline.get("recall_at_1")
    print(
        f"fine-tuned {args.model} ({loss}, {args.mode}) on {n_train} items, "
        f"{len(result.history)} epochs; saved to {out}"
    )
    if not_measurable:
        print(f"validation recall@1: not measurable: {not_measurable}")
    elif before is not None and best.recall_at_1 is not None:
        print(
            f"validation recall@1: {before:.3f} -> {best.recall_at_1:.3f}   "
            f"recall@5: {result.baseline['recall_at_5']:.3f} -> {best.recall_at_5:.3f}"
        )
    print(f"use it with: --model {shlex.quote(spec)}")
