"""``imgemb eval``: retrieval quality and speed of models, runtimes, precisions and indexes.

Label-free on a plain folder (augmented copies of its images must find their original),
labelled with ``--queries FILE`` (JSONL / CSV) or ``--classes`` (a class folder), or an
existing store evaluated as is with ``--store``. Prints a Markdown table; ``--json``,
``--markdown`` and ``--plot`` write the report, the table and a PNG of quality against speed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from langchain_image_embeddings.cli.common import (
    OFFLINE_MODEL,
    STORE_HELP,
    add_progress_options,
    output_file,
    show_progress,
    store_model,
)
from langchain_image_embeddings.cli.exit_codes import EXIT_OK, EXIT_USAGE

__all__ = ["add_eval_parser", "model_setting"]

_EPILOG = """\
examples:
  imgemb samples photos --no-copies
  imgemb eval photos                                  # label-free, Lite0, torch, flat
  imgemb eval photos --model timm:efficientnet_lite0 \\
      --model 'timm:efficientnet_lite0 {"pretrained": null, "allow_random_weights": true}' \\
      --runtime torch onnx --index flat hnsw --plot eval.png --json eval.json
  imgemb eval photos --classes                        # photos/<class>/<image>
  imgemb eval photos --queries queries.jsonl          # {"image"|"text": ..., "relevant"|"label": ...}
  imgemb eval --store faiss:photo-index --queries queries.jsonl
"""


def model_setting(text: str) -> tuple[str, dict[str, Any]]:
    """``argparse`` type of ``--model``: ``SPEC`` or ``SPEC {JSON options}``.

    Example:
        >>> model_setting('timm:efficientnet_lite0 {"pretrained": null}')
        ('timm:efficientnet_lite0', {'pretrained': None})
    """
    spec, brace, rest = text.partition("{")
    spec = spec.strip()
    if not spec:
        raise argparse.ArgumentTypeError(f"no model spec in {text!r}")
    if not brace:
        return spec, {}
    try:
        options = json.loads(brace + rest)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"the options after {spec!r} are not a JSON object: {exc.msg}"
        ) from exc
    if not isinstance(options, dict):
        raise argparse.ArgumentTypeError(f"the options after {spec!r} must be a JSON object")
    return spec, options


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _cmd_eval(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.evaluation import QueryFileError, evaluate, settings_grid

    if args.queries is not None and args.classes:
        print("error: give --queries FILE or --classes, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.directory is None and (args.store is None or args.queries is None):
        print(
            "error: give a folder of images (or --store SPEC with --queries FILE)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.directory is not None and not Path(args.directory).is_dir():
        print(f"error: no folder at {args.directory}", file=sys.stderr)
        return EXIT_USAGE
    outputs = {
        name: output_file(f"--{name}", Path(value), example=f"eval.{suffix}")
        for name, value, suffix in (
            ("json", args.json, "json"),
            ("markdown", args.markdown, "md"),
            ("plot", args.plot, "png"),
        )
        if value is not None
    }
    mode = "queries" if args.queries is not None else "classes" if args.classes else "label-free"
    progress = show_progress(args)
    common: dict[str, Any] = {
        "queries": args.queries,
        "mode": mode,
        "sample": args.sample,
        "copies": args.copies,
        "seed": args.seed,
        "show_progress": progress,
    }
    try:
        if args.store is not None:
            store = _open_store(args)
            report = evaluate(args.directory, store=store, **common)
        else:
            settings = settings_grid(
                args.model or [(OFFLINE_MODEL, {})],
                runtimes=args.runtime,
                precisions=args.precision,
                indexes=args.index,
            )
            if not settings:
                print("error: no setting to evaluate (int8 needs --runtime onnx)", file=sys.stderr)
                return EXIT_USAGE
            report = evaluate(
                args.directory,
                settings=settings,
                device=args.device,
                batch_size=args.batch_size,
                progress=(lambda line: print(line, file=sys.stderr)) if progress else None,
                **common,
            )
    except QueryFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report.to_markdown())
    if "json" in outputs:
        report.save_json(outputs["json"])
    if "markdown" in outputs:
        report.save_markdown(outputs["markdown"])
    if "plot" in outputs:
        report.save_plot(outputs["plot"], quality=args.plot_quality)
    for row in report.rows:
        for failure in row.failures:
            print(f"warning: not embedded ({row.name}): {failure}", file=sys.stderr)
    return EXIT_OK


def _open_store(args: argparse.Namespace) -> Any:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.vectorstores import open_store

    model, options = args.model[0] if args.model else (store_model(args.store), {})
    embeddings = ImageEmbeddings(model, model_kwargs=options, device=args.device)
    return open_store(args.store, embeddings, create=False)


def add_eval_parser(sub: Any) -> None:
    """``eval``."""
    parser = sub.add_parser(
        "eval",
        help="measure retrieval quality and speed (models, runtimes, precisions, indexes)",
        # Raw formatting (for the epilog's examples) keeps line breaks as written: wrap by hand.
        description="Measure recall@1/5/10, MRR, nDCG@10, embedding throughput and query\n"
        "latency, one row per setting (every --model x --runtime x --precision x --index).\n"
        "Without --queries or --classes, label-free: augmented copies of the images must\n"
        "find their original. Prints a Markdown table (see docs/evaluation.md).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "directory", nargs="?", default=None, help="folder of images: the corpus (recursive)"
    )
    how = parser.add_argument_group("queries")
    how.add_argument(
        "--queries",
        type=Path,
        default=None,
        metavar="FILE",
        help='labelled queries, .jsonl or .csv: {"image" or "text": ..., "relevant": [paths '
        'under the folder] or "label": CLASS} (see docs/evaluation.md)',
    )
    how.add_argument(
        "--classes",
        action="store_true",
        help="the folder holds one subfolder per class: every image queries the others of its class",
    )
    how.add_argument(
        "--sample",
        type=_positive,
        default=None,
        help="label-free: how many images get augmented copies (default: all)",
    )
    how.add_argument(
        "--copies",
        type=_positive,
        default=2,
        help="label-free: augmented copies per image (default: 2)",
    )
    how.add_argument(
        "--seed", type=int, default=0, help="seeds the copies and random weights (default: 0)"
    )
    what = parser.add_argument_group("settings compared (one row per combination)")
    what.add_argument(
        "--model",
        action="append",
        type=model_setting,
        default=None,
        metavar="'SPEC [JSON]'",
        help=f"a model, repeatable; options as JSON after the spec, e.g. 'timm:efficientnet_lite0 "
        f'{{"pretrained": null, "allow_random_weights": true}}\' (random weights); '
        f"default: {OFFLINE_MODEL}",
    )
    what.add_argument(
        "--runtime",
        nargs="+",
        choices=("torch", "onnx", "openvino"),
        default=["torch"],
        help="runtimes to compare (default: torch)",
    )
    what.add_argument(
        "--precision",
        nargs="+",
        choices=("auto", "fp32", "fp16", "bf16", "int8"),
        default=["auto"],
        help="precisions to compare; int8 only with onnx / openvino (default: auto)",
    )
    what.add_argument(
        "--index",
        nargs="+",
        default=["flat"],
        help="FAISS index kinds to compare: flat, hnsw, ivf-pq, auto or a faiss factory "
        "string (approximate kinds are built from 1,000 images on; default: flat)",
    )
    what.add_argument("--device", default="auto", help="where torch models run (default: auto)")
    what.add_argument(
        "--batch-size", type=_positive, default=32, help="images per forward pass (default: 32)"
    )
    what.add_argument(
        "--store",
        default=None,
        metavar="SPEC",
        help="evaluate this existing store as is (" + STORE_HELP.split("(")[0].strip() + ")",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the report")
    out.add_argument("--markdown", type=Path, default=None, metavar="FILE", help="write the table")
    out.add_argument(
        "--plot", type=Path, default=None, metavar="FILE", help="write a PNG of quality vs speed"
    )
    out.add_argument(
        "--plot-quality",
        choices=("recall@1", "recall@5", "recall@10", "MRR", "nDCG@10"),
        default="MRR",
        help="the metric the plot shows (default: MRR)",
    )
    add_progress_options(parser)
    parser.set_defaults(func=_cmd_eval)
