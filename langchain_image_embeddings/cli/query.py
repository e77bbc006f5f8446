"""``imgemb search``, ``info`` and ``duplicates``: commands that only read a store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from langchain_image_embeddings.cli.common import (
    DEFAULT_STORE,
    STORE_HELP,
    add_model_options,
    key_value,
    model_kwargs,
    store_model,
)
from langchain_image_embeddings.cli.exit_codes import (
    EXIT_OK,
    EXIT_USAGE,
)
from langchain_image_embeddings.errors import (
    EncoderError,
)

__all__ = ["add_query_parsers"]


def _cmd_search(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.images import ImageLoadOptions
    from langchain_image_embeddings.serve.filters import equality_filter
    from langchain_image_embeddings.vectorstores import open_store

    if (args.query is None) == (args.image is None):
        print("error: give either a text query or --image PATH_OR_URL", file=sys.stderr)
        return EXIT_USAGE
    if args.query is not None and not args.query.strip():
        print("error: the text query is empty", file=sys.stderr)
        return EXIT_USAGE
    if args.k <= 0:
        print("error: -k must be positive", file=sys.stderr)
        return EXIT_USAGE
    model = args.model or store_model(args.store)
    embeddings = ImageEmbeddings(
        model,
        model_kwargs=model_kwargs(args),
        device=args.device,
        load_options=ImageLoadOptions(allow_remote=args.image is not None and "://" in args.image),
    )
    store = open_store(args.store, embeddings, create=False)
    filter_ = equality_filter(args.filter or [])
    if args.image is not None:
        hits = store.similarity_search_by_image_with_relevance_score(
            args.image, args.k, filter=filter_
        )
    else:
        if not store.image_embeddings.supports_text:
            raise EncoderError(
                f"{store.image_embeddings.model_id} has no text tower: text search needs a CLIP-type model "
                "(index with --model open_clip:...), or search with --image"
            )
        hits = store.similarity_search_with_score(args.query, args.k, filter=filter_)
    rows = [
        {
            "rank": n,
            "score": round(score, 6),
            "source": d.metadata.get("source", d.page_content),
            "id": d.id,
            "metadata": d.metadata,
        }
        for n, (d, score) in enumerate(hits, start=1)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['rank']:>3}. {row['score']:.4f}  {row['source']}")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.vectorstores import store_info

    info = store_info(args.store)
    runtime: dict[str, Any] | None = None
    if args.runtimes and info.get("model"):
        from langchain_image_embeddings.cli.bench import remembered_runtime

        runtime = remembered_runtime(str(info["model"]))
    if args.json:
        print(json.dumps(info if runtime is None else {**info, "runtime": runtime}, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:10} {value}")
        if runtime is not None:
            print(f"{'runtime':10} {_runtime_line(runtime)}")
    return EXIT_OK


def _runtime_line(runtime: dict[str, Any]) -> str:
    """What ``runtime="auto"`` runs for the store's model here, with the measured rates."""
    if runtime.get("chosen") is None:
        return f"auto: {runtime['note']}"
    rates = ", ".join(f"{k} {v:.1f}" for k, v in sorted(runtime["images_per_second"].items()))
    shape = "x".join(map(str, runtime["batch_shape"]))
    return f"auto -> {runtime['chosen']} ({rates} img/s model-only on {shape})"


def _cmd_duplicates(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.duplicates import find_duplicates, removal_plan
    from langchain_image_embeddings.vectorstores import open_store

    if not 0.0 < args.threshold <= 1.0:
        print(
            f"error: --threshold is a relevance score in (0, 1], got {args.threshold}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.max_group_size < 2:
        print(f"error: --max-group-size must be at least 2, got {args.max_group_size}")
        return EXIT_USAGE
    store = open_store(args.store, create=False)
    groups = find_duplicates(
        store, args.threshold, method=args.method, max_group_size=args.max_group_size
    )
    count = len(store)
    if args.json:
        report: dict[str, Any] = {
            "store": args.store,
            "threshold": args.threshold,
            "method": args.method,
            "count": count,
            "groups": [g.to_dict() for g in groups],
        }
        if args.keep:
            report["keep"] = args.keep
            report["remove"] = removal_plan(groups)
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(
        f"{len(groups)} group(s) of near-duplicates at a score >= {args.threshold} among "
        f"{count} images in {args.store}"
    )
    for n, group in enumerate(groups, start=1):
        print(f"group {n}: {len(group)} images, scores {group.min_score:.4f}-{group.max_score:.4f}")
        keeper = group.keeper.id
        for member in group.members:
            mark = ("keep  " if member.id == keeper else "remove") if args.keep else ""
            print(f"  {mark}{' ' if mark else ''}{member.score:.4f}  {member.source}")
            for other in member.sources:
                if other != member.source:
                    print(f"          {other}  (same bytes)")
    return EXIT_OK


def add_query_parsers(sub: Any) -> None:
    """``search``, ``info`` and ``duplicates``: read a store."""
    search = sub.add_parser("search", help="search a store by text (CLIP models) or by image")
    search.add_argument("query", nargs="?", help="text query (CLIP-type models)")
    search.add_argument("--image", metavar="PATH_OR_URL", help="query image: path or URL")
    search.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=STORE_HELP)
    search.add_argument("-k", type=int, default=5, help="number of results (default: 5)")
    search.add_argument(
        "--filter",
        action="append",
        type=key_value,
        metavar="KEY=VALUE",
        help="only results whose metadata KEY equals VALUE, e.g. format=JPEG; integers and "
        "decimals compare as numbers (width=512); repeatable, all must match",
    )
    add_model_options(
        search,
        default=None,
        model_help="override the store's recorded model (default: the store's model)",
    )
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    search.set_defaults(func=_cmd_search)

    info = sub.add_parser("info", help="describe a store: kind, size, model")
    info.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=STORE_HELP)
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.add_argument(
        "--runtimes",
        action="store_true",
        help='also say which CPU runtime runtime="auto" uses for the store\'s model on this '
        "machine, with the measured speeds (loads the model; never measures)",
    )
    info.set_defaults(func=_cmd_info)

    duplicates = sub.add_parser(
        "duplicates", help="list groups of near-duplicate images in a store"
    )
    duplicates.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=STORE_HELP)
    duplicates.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        metavar="T",
        help="relevance score in (0, 1] at or above which two images are near-duplicates "
        "(default: 0.9; crops, flips and re-encodes of one photo score above it)",
    )
    duplicates.add_argument(
        "--method",
        choices=["centroid", "complete", "single"],
        default="centroid",
        help="centroid (default): every image of a group is near the group's mean; "
        "complete: every two images of a group are near-duplicates (strictest); "
        "single: any chain of near-duplicates joins (largest groups)",
    )
    duplicates.add_argument(
        "--max-group-size",
        type=int,
        default=50,
        metavar="N",
        help="most images in one group (centroid, complete; default: 50)",
    )
    duplicates.add_argument(
        "--keep",
        choices=["largest"],
        default=None,
        help="suggest one image to keep per group (largest: most pixels, then the largest "
        "file) and list the others to remove (with --json: a 'remove' list); nothing is deleted",
    )
    duplicates.add_argument("--json", action="store_true", help="print the groups as JSON")
    duplicates.set_defaults(func=_cmd_duplicates)
