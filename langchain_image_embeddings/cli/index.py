"""``imgemb index``: sync a folder into a store, all-or-nothing unless ``--skip-errors``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.cli.common import (
    BATCH_HELP,
    DEFAULT_STORE,
    OFFLINE_MODEL,
    STORE_HELP,
    add_expected_rows_option,
    add_model_options,
    add_progress_options,
    memory_size,
    model_kwargs,
    output_file,
    recall_target,
    recorded_model,
    show_progress,
)
from langchain_image_embeddings.cli.exit_codes import (
    EXIT_INPUT_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
)

if TYPE_CHECKING:
    from langchain_image_embeddings.sync import SyncResult
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

__all__ = ["add_index_parser", "open_for_write"]


def _nothing_to_index(args: argparse.Namespace, root: Path) -> str | None:
    """Why ``index`` has no file to work on (empty folder, or filters matching nothing)."""
    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader

    pdf = bool(getattr(args, "pdf", False))
    filtered = ImageDirectoryLoader(
        root, glob=args.glob or "*", exclude=args.exclude or (), pdf=pdf
    )
    if next(iter(filtered.iter_paths()), None) is not None:
        return None
    if (args.glob or args.exclude) and next(
        iter(ImageDirectoryLoader(root, pdf=pdf).iter_paths()), None
    ):
        given = " ".join(
            [
                *(f"--glob {g!r}" for g in args.glob or ()),
                *(f"--exclude {e!r}" for e in args.exclude or ()),
            ]
        )
        return f"no image file in {root} matches {given}"
    return f"no image{' or PDF' if pdf else ''} files in {root}"


def open_for_write(args: argparse.Namespace) -> ImageVectorStore:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.vectorstores import open_store

    model = args.model or recorded_model(args.store) or OFFLINE_MODEL
    embeddings = ImageEmbeddings(
        model,
        model_kwargs=model_kwargs(args),
        device=args.device,
        batch_size=args.batch_size,
        show_progress=show_progress(args),
    )
    return open_store(
        args.store,
        embeddings,
        create=True,
        faiss_index=getattr(args, "faiss_index", None),
        recall_target=getattr(args, "recall_target", None),
        memory_budget=getattr(args, "memory_budget", None),
        expected_rows=getattr(args, "expected_rows", None),
    )


def _cmd_index(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
    from langchain_image_embeddings.sync import sync_directory

    root = Path(args.directory)
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    empty = None if args.allow_empty else _nothing_to_index(args, root)
    if empty is not None:
        print(
            f"error: {empty}: nothing to index, nothing written to {args.store} (--allow-empty "
            "indexes anyway: an existing store then drops the vectors of files no longer there, "
            "unless --keep-missing)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    report = (
        output_file("--report", Path(args.report), example="report.jsonl") if args.report else None
    )
    store = open_for_write(args)
    loader = ImageDirectoryLoader(
        root,
        glob=args.glob or "*",
        exclude=args.exclude or (),
        load_options=store.image_embeddings.load_options,
        pdf=args.pdf,
        paths="absolute",
        include_mtime=True,  # as sync_directory's own loader: the records keep the file's date
    )
    started = time.perf_counter()
    try:
        result = sync_directory(
            store,
            loader,
            delete_missing=not args.keep_missing,
            all_or_nothing=not args.skip_errors,
        )
        total = len(store)
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    if report is not None:
        _write_report(report, result.report())
    _print_index_summary(args, root, store.image_embeddings.model_id, result, total, elapsed)
    if result.failed and not args.skip_errors:
        return EXIT_INPUT_ERRORS
    return EXIT_OK


def _print_index_summary(
    args: argparse.Namespace,
    root: Path,
    model_id: str,
    result: SyncResult,
    total: int,
    elapsed: float,
) -> None:
    """The outcome of ``index``: JSON, or a line (and one per duplicate / failure)."""
    summary = {
        "directory": str(root),
        "store": args.store,
        "model": model_id,
        **result.counts(),
        "total": total,
        "committed": result.committed,
        "seconds": round(elapsed, 2),
        "errors": [{"input": e.source, "code": e.code, "reason": e.reason} for e in result.failed],
        "duplicate_of": result.duplicates,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not result.committed:
        print(
            f"{summary['failed']} of {len(result.report())} images in {root} failed: nothing was "
            f"written, {args.store} is unchanged ({total} in store); fix or remove them, or "
            "rerun with --skip-errors to index the others"
        )
    else:
        print(
            f"indexed {root} into {args.store} with {summary['model']}: "
            f"added {summary['added']}, updated {summary['updated']}, removed {summary['removed']}, "
            f"unchanged {summary['unchanged']}, duplicates {summary['duplicates']}, "
            f"failed {summary['failed']} ({summary['embedded']} embedded, {summary['total']} in "
            f"store, {summary['seconds']} s)"
        )
        for path, original in sorted(result.duplicates.items()):
            print(
                f"duplicate: {path} has the same bytes as {original} (one vector, both paths kept)"
            )
    for err in result.failed:
        if not args.json:
            print(f"failed: {err.source}: {err.reason} [{err.code}]", file=sys.stderr)


def _write_report(path: Path, rows: list[dict[str, str | None]]) -> None:
    """Write the per-input report as JSON lines (one object per input)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def add_index_parser(sub: Any) -> None:
    """``index``: sync a folder into a store."""
    index = sub.add_parser("index", help="index (sync) a folder of images into a vector store")
    index.add_argument("directory", help="folder of images (searched recursively)")
    index.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=STORE_HELP)
    add_model_options(
        index,
        default=None,
        model_help=f"encoder spec (default: the store's model, else {OFFLINE_MODEL})",
    )
    index.add_argument("--batch-size", type=int, default=32, help=BATCH_HELP)
    index.add_argument(
        "--glob",
        action="append",
        metavar="PATTERN",
        help="only files whose relative path or name matches (repeatable)",
    )
    index.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="leave out files matching (repeatable)",
    )
    index.add_argument(
        "--pdf",
        action="store_true",
        help="also index PDFs: each page and each embedded figure is an image "
        "(file.pdf#page=N; extra [pdf])",
    )
    index.add_argument("--keep-missing", action="store_true", help="keep vectors of deleted files")
    index.add_argument(
        "--allow-empty",
        action="store_true",
        help="index even when no file is found (default: say so, write nothing and exit 2)",
    )
    index.add_argument(
        "--skip-errors",
        action="store_true",
        help="index the readable images and exit 0 even if some fail "
        "(default: any failure writes nothing and exits 1)",
    )
    index.add_argument(
        "--report",
        metavar="FILE.jsonl",
        help='write one JSON line per input: {"input", "status", "code", "reason", "duplicate_of"}',
    )
    _add_faiss_options(index)
    index.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_progress_options(index)
    index.set_defaults(func=_cmd_index)


def _add_faiss_options(index: argparse.ArgumentParser) -> None:
    """``--faiss-index``, ``--recall-target``, ``--memory-budget`` and ``--expected-rows``
    (FAISS stores only)."""
    index.add_argument(
        "--faiss-index",
        metavar="KIND",
        help="FAISS stores: flat, hnsw, ivf-pq, auto (flat while small, HNSW, then IVF-PQ) or "
        "a faiss.index_factory string; default: the store's kind (new stores: flat)",
    )
    index.add_argument(
        "--recall-target",
        type=recall_target,
        metavar="R",
        help="FAISS stores: recall@10 (0-1] that efSearch/nprobe are tuned to, recorded in the "
        "store; default: the store's (new stores: 0.95)",
    )
    index.add_argument(
        "--memory-budget",
        type=memory_size,
        metavar="SIZE",
        help="FAISS stores: memory an HNSW index may take before --faiss-index auto picks "
        "IVF-PQ, e.g. 2GB or 512MiB, recorded in the store; default: the store's (new stores: "
        "half the machine's memory)",
    )
    add_expected_rows_option(index)
