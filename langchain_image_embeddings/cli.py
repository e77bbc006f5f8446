"""Command line: ``imgemb``. The only module that prints or exits.

Subcommands: ``embed DIR``, ``index DIR --store SPEC``, ``search "text" | --image X``,
``info``, ``models``, ``samples DIR``, ``duplicates``, ``serve`` (a search page and JSON API,
extra ``[serve]``; binds 127.0.0.1 unless ``--host`` says otherwise) and ``finetune`` when the
training extra is there.

Store specs: ``faiss:PATH`` (default ``faiss:imgemb-index``), ``chroma:PATH[#COLLECTION]``,
``chroma+http://HOST:PORT/COLLECTION``, ``milvus+http://HOST:PORT/COLLECTION``.

Every subcommand that takes ``--model`` also takes ``--pretrained VALUE`` (a weights tag or a
local checkpoint path) and ``--model-kwargs JSON`` (encoder options), passed to
``ImageEmbeddings(model_kwargs=...)``; they apply to a store's recorded model too.

``index`` on a folder without image files, or with a ``--glob`` / ``--exclude`` that matches
none, says so and writes nothing (exit 2) unless ``--allow-empty``. Progress bars are shown
when stderr is a terminal, or with ``--progress``; ``--quiet`` turns them off.

``index`` is all-or-nothing by default: if any image fails, nothing is written and the
store is left exactly as it was (exit 1); ``--skip-errors`` indexes the readable images
and exits 0. ``--report FILE.jsonl`` writes one JSON line per input
(``{"input", "status": "ok"|"error", "code", "reason"}``) either way. A store another
process is writing is refused at once ("store locked", exit 5).

Exit codes:
    0  success
    1  some inputs failed (e.g. unreadable images); everything else was done (``index``:
       nothing was written unless ``--skip-errors``)
    2  usage error (bad arguments, malformed store spec, missing folder, nothing to index)
    3  the model could not be loaded, or cannot do what was asked (text search on an
       image-only model)
    4  other error
    5  store error: missing, corrupt or unreachable store, or a store written by another model
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings import __version__
from langchain_image_embeddings.errors import (
    EncoderError,
    ImageEmbeddingsError,
    MissingDependencyError,
    StoreError,
)
from langchain_image_embeddings.exit_codes import (
    EXIT_ERROR,
    EXIT_INPUT_ERRORS,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
)

if TYPE_CHECKING:
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore


OFFLINE_MODEL = "timm:efficientnet_lite0"
DEFAULT_STORE = "faiss:imgemb-index"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


def _show_progress(args: argparse.Namespace) -> bool:
    """Progress bars on a terminal (or with ``--progress``); never with ``--quiet``."""
    if args.quiet:
        return False
    return bool(args.progress) or sys.stderr.isatty()


def _model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--model-kwargs`` JSON, with ``--pretrained``, ``--runtime`` and ``--precision`` on
    top (``ImageEmbeddings`` lifts ``runtime`` / ``precision`` out of ``model_kwargs``)."""
    kwargs: dict[str, Any] = dict(args.model_kwargs or {})
    if args.pretrained is not None:
        kwargs["pretrained"] = args.pretrained
    for name in ("runtime", "precision"):
        if getattr(args, name, None) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def _json_object(text: str) -> dict[str, Any]:
    """``argparse`` type of ``--model-kwargs``: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f'expected a JSON object such as \'{{"pretrained": "/models/clip.safetensors"}}\', '
            f"got {text!r}"
        )
    return value


def _recall_target(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a recall in (0, 1], e.g. 0.95")
    return value


def _memory_size(text: str) -> int:
    from langchain_image_embeddings.vectorstores.faiss_index import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _key_value(text: str) -> tuple[str, str]:
    """``argparse`` type of ``--filter``: ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. format=JPEG), got {text!r}")
    return key.strip(), value


def _nothing_to_index(args: argparse.Namespace, root: Path) -> str | None:
    """Why ``index`` has no file to work on (empty folder, or filters matching nothing)."""
    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader

    filtered = ImageDirectoryLoader(root, glob=args.glob or "*", exclude=args.exclude or ())
    if next(iter(filtered.iter_paths()), None) is not None:
        return None
    if (args.glob or args.exclude) and next(iter(ImageDirectoryLoader(root).iter_paths()), None):
        given = " ".join(
            [
                *(f"--glob {g!r}" for g in args.glob or ()),
                *(f"--exclude {e!r}" for e in args.exclude or ()),
            ]
        )
        return f"no image file in {root} matches {given}"
    return f"no image files in {root}"


class _RejectRecords(logging.Filter):
    """A logging filter that rejects every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _LastResort(logging.StreamHandler):  # type: ignore[type-arg]
    """What :data:`logging.lastResort` does, as a root handler: WARNING and above to stderr,
    only for records that no other handler on the way to the root takes."""

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)

    def handle(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if logger.handlers:
                return False  # printed (or not) by that handler, as without this one
            logger = logger.parent
        self.setStream(sys.stderr)
        return super().handle(record)


@contextlib.contextmanager
def _no_stray_root_logging() -> Iterator[None]:
    """Drop records logged on the root logger itself while a command runs.

    open_clip reports a failed weights load with ``logging.error(...)`` (the root logger)
    before raising; the CLI reports that error once, in its own ``error:`` line, so the
    stray ``ERROR:root:...`` line is dropped. Where the root logger has no handler, a
    stand-in for :data:`logging.lastResort` keeps ``logging.error`` from installing a
    ``basicConfig`` handler, so the warnings of other loggers reach stderr as before.
    """
    root = logging.getLogger()
    drop = _RejectRecords()  # a logger's filters see only the records logged on it
    root.addFilter(drop)
    stand_in = _LastResort() if not root.handlers else None
    if stand_in is not None:
        root.addHandler(stand_in)
    try:
        yield
    finally:
        root.removeFilter(drop)
        if stand_in is not None:
            root.removeHandler(stand_in)


def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from langchain_image_embeddings.embeddings import ImageEmbeddings

    root = Path(args.directory)
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader

    # The loader's walk: hidden files skipped, symlinks escaping the folder or looping reported.
    lister = ImageDirectoryLoader(root)
    files = list(lister.iter_paths())
    if not files and not lister.failures:
        print(f"error: no image files in {root}", file=sys.stderr)
        return EXIT_USAGE
    embeddings = ImageEmbeddings(
        args.model,
        model_kwargs=_model_kwargs(args),
        device=args.device,
        batch_size=args.batch_size,
        show_progress=_show_progress(args),
    )
    started = time.perf_counter()
    result = embeddings.try_embed_images([str(p) for p in files])
    elapsed = time.perf_counter() - started
    embedded = [files[i] for i in result.indices]
    errors = [*lister.failures, *result.errors]
    summary = {
        "model": embeddings.model_id,
        "directory": str(root),
        "images": len(files) + len(lister.failures),
        "embedded": len(embedded),
        "failed": len(errors),
        "dim": int(result.vectors.shape[1]),
        "seconds": round(elapsed, 2),
        "images_per_second": round(len(embedded) / elapsed, 1) if elapsed > 0 else None,
        "errors": [{"input": e.source, "code": e.code, "reason": e.reason} for e in errors],
    }
    if args.out:
        np.save(args.out, result.vectors)
        summary["vectors_file"] = str(args.out)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['embedded']}/{summary['images']} images embedded with {summary['model']} "
            f"({summary['dim']}-d) in {summary['seconds']} s ({summary['images_per_second']} img/s)"
        )
        if len(embedded) > 1:
            sims = result.vectors @ result.vectors.T
            np.fill_diagonal(sims, -np.inf)
            print("nearest neighbour of each image (cosine):")
            for row, path in enumerate(embedded):
                best = int(np.argmax(sims[row]))
                print(
                    f"  {path.relative_to(lister.root)} -> {embedded[best].relative_to(lister.root)} ({sims[row, best]:.3f})"
                )
        for err in errors:
            print(f"failed: {err.source}: {err.reason} [{err.code}]", file=sys.stderr)
    return EXIT_INPUT_ERRORS if errors else EXIT_OK


def _cmd_models(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.encoders import list_backends, list_encoders

    for info in list_encoders():
        flags = ", ".join(f for f, on in (("offline", info.offline), ("text", info.text)) if on)
        print(f"{info.spec:32} {info.description}" + (f" [{flags}]" if flags else ""))
    print(f"\nbackends: {', '.join(list_backends())} (any model of a backend: 'timm:<name>')")
    return EXIT_OK


def _cmd_samples(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.samples import write_sample_photos

    paths = write_sample_photos(args.directory, copies=not args.no_copies)
    print(f"wrote {len(paths)} photos to {args.directory}")
    return EXIT_OK


def _recorded_model(spec: str) -> str | None:
    """The model an existing store was written with (without loading it), else ``None``."""
    from langchain_image_embeddings.vectorstores import store_info

    try:
        model = store_info(spec).get("model")
    except StoreError:
        return None
    return str(model) if model else None


def _open_for_write(args: argparse.Namespace) -> ImageVectorStore:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.vectorstores import open_store

    model = args.model or _recorded_model(args.store) or OFFLINE_MODEL
    embeddings = ImageEmbeddings(
        model,
        model_kwargs=_model_kwargs(args),
        device=args.device,
        batch_size=args.batch_size,
        show_progress=_show_progress(args),
    )
    return open_store(
        args.store,
        embeddings,
        create=True,
        faiss_index=getattr(args, "faiss_index", None),
        recall_target=getattr(args, "recall_target", None),
        memory_budget=getattr(args, "memory_budget", None),
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
    store = _open_for_write(args)
    loader = ImageDirectoryLoader(
        root,
        glob=args.glob or "*",
        exclude=args.exclude or (),
        load_options=store.image_embeddings.load_options,
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
    if args.report:
        _write_report(Path(args.report), result.report())
    summary = {
        "directory": str(root),
        "store": args.store,
        "model": store.image_embeddings.model_id,
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
    if result.failed and not args.skip_errors:
        return EXIT_INPUT_ERRORS
    return EXIT_OK


def _write_report(path: Path, rows: list[dict[str, str | None]]) -> None:
    """Write the per-input report as JSON lines (one object per input)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def _cmd_search(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.images import ImageLoadOptions
    from langchain_image_embeddings.vectorstores import open_store

    if (args.query is None) == (args.image is None):
        print("error: give either a text query or --image PATH_OR_URL", file=sys.stderr)
        return EXIT_USAGE
    if args.k <= 0:
        print("error: -k must be positive", file=sys.stderr)
        return EXIT_USAGE
    model = args.model or _recorded_model(args.store)
    if model is None:
        raise StoreError(
            f"no store at {args.store} (or it records no model): run 'imgemb index' first"
        )
    embeddings = ImageEmbeddings(
        model,
        model_kwargs=_model_kwargs(args),
        device=args.device,
        load_options=ImageLoadOptions(allow_remote=args.image is not None and "://" in args.image),
    )
    store = open_store(args.store, embeddings, create=False)
    filter_ = dict(args.filter) if args.filter else None
    if args.image is not None:
        hits = store.search_by_image(args.image, args.k, filter=filter_)
    else:
        if not store.image_embeddings.supports_text:
            raise EncoderError(
                f"{store.image_embeddings.model_id} has no text tower: text search needs a CLIP-type model "
                "(index with --model open_clip:...), or search with --image"
            )
        hits = store.search_by_text(args.query, args.k, filter=filter_)
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
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:10} {value}")
    return EXIT_OK


def _cmd_duplicates(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.duplicates import find_duplicates
    from langchain_image_embeddings.vectorstores import open_store

    if not 0.0 < args.threshold <= 1.0:
        print(
            f"error: --threshold is a relevance score in (0, 1], got {args.threshold}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    store = open_store(args.store, create=False)
    groups = find_duplicates(store, args.threshold)
    count = len(store)
    if args.json:
        report = {
            "store": args.store,
            "threshold": args.threshold,
            "count": count,
            "groups": [g.to_dict() for g in groups],
        }
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(
        f"{len(groups)} group(s) of near-duplicates at a score >= {args.threshold} among "
        f"{count} images in {args.store}"
    )
    for n, group in enumerate(groups, start=1):
        print(f"group {n}: {len(group)} images, scores {group.min_score:.4f}-{group.max_score:.4f}")
        for member in group.members:
            print(f"  {member.score:.4f}  {member.source}")
            for other in member.sources:
                if other != member.source:
                    print(f"          {other}  (same bytes)")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.errors import MissingDependencyError as _Missing
    from langchain_image_embeddings.serve import ServeSettings, create_app
    from langchain_image_embeddings.vectorstores import open_store, store_info

    if not 0 <= args.port <= 65535:
        print(f"error: --port must be in 0-65535, got {args.port}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import uvicorn
    except ImportError as exc:
        raise _Missing(
            "imgemb serve needs uvicorn: pip install 'langchain-image-embeddings[serve]'"
        ) from exc
    model = args.model or _recorded_model(args.store)
    if model is None:
        raise StoreError(
            f"no store at {args.store} (or it records no model): run 'imgemb index' first"
        )
    embeddings = ImageEmbeddings(model, model_kwargs=_model_kwargs(args), device=args.device)
    store = open_store(args.store, embeddings, create=False)
    info = store_info(args.store)
    settings = ServeSettings(
        max_k=args.max_k,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        image_root=args.image_root,
    )
    app = create_app(store, settings, info=info)
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if not loopback:
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can search "
            "the store and see its images",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"serving {args.store} ({len(store)} images, {store.image_embeddings.model_id}) at "
        f"http://{shown}:{args.port}/  (Ctrl+C to stop)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK


def _add_finetune(sub: Any) -> None:
    """Register ``finetune`` when the training module is installed (issue 4)."""
    if importlib.util.find_spec("langchain_image_embeddings.training") is None:
        return
    if importlib.util.find_spec("langchain_image_embeddings.training.cli") is None:
        return
    from langchain_image_embeddings.training.cli import add_finetune_parser

    add_finetune_parser(sub)


_EPILOG = f"""\
examples:
  imgemb samples photos                              # real sample photos, offline
  imgemb index photos --store faiss:photo-index      # {OFFLINE_MODEL}, offline
  imgemb search --image photos/chelsea.jpg --store faiss:photo-index -k 3
  imgemb index photos --store faiss:clip-index --model open_clip:ViT-B-32 \\
      --pretrained /models/vit-b-32.safetensors       # a local CLIP checkpoint
  imgemb search "a cat on a sofa" --store faiss:clip-index \\
      --pretrained /models/vit-b-32.safetensors
  imgemb info --store faiss:photo-index --json
  imgemb duplicates --store faiss:photo-index --threshold 0.9
  imgemb serve --store faiss:photo-index             # http://127.0.0.1:8000/

exit codes:
  0  success
  1  some inputs failed (unreadable images); index then wrote nothing unless --skip-errors
  2  usage error: bad arguments, malformed store spec, missing folder, nothing to index
  3  the model could not be loaded, or cannot do what was asked (text search, image-only model)
  4  other error
  5  store error: missing, corrupt, unreachable or locked store, or written by another model

Run 'imgemb COMMAND -h' for the options of a command.
"""


def _add_model_options(
    parser: argparse.ArgumentParser, *, default: str | None, model_help: str
) -> None:
    """``--model``, ``--pretrained``, ``--model-kwargs``, ``--device``, ``--runtime`` and
    ``--precision``."""
    parser.add_argument("--model", default=default, metavar="SPEC", help=model_help)
    parser.add_argument(
        "--pretrained",
        default=None,
        metavar="VALUE",
        help="weights of the model: a tag (open_clip, e.g. laion2b_s34b_b79k) or a local "
        "checkpoint path; sets model_kwargs['pretrained']",
    )
    parser.add_argument(
        "--model-kwargs",
        type=_json_object,
        default=None,
        metavar="JSON",
        help='encoder options as a JSON object, e.g. \'{"pretrained": "/models/clip.safetensors", '
        '"cache_dir": "/models"}\' (--pretrained overrides its "pretrained")',
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where the model runs: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps "
        "(default: auto)",
    )
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx", "openvino"),
        default=None,
        help="inference runtime: torch (default), onnx (ONNX Runtime, extra [onnx]) or "
        "openvino (extra [openvino]); both CPU-only, the model is exported once and cached "
        "under $IMGEMB_CACHE_DIR (default ~/.cache/langchain-image-embeddings/runtimes)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "fp16", "bf16", "int8"),
        default=None,
        help="inference precision (default: auto = fp16 on CUDA, else fp32); int8 is dynamic "
        "quantisation with --runtime onnx or openvino",
    )


def _add_progress_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars even when stderr is not a terminal",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


_STORE_HELP = (
    "store spec: faiss:PATH, chroma:PATH[#COLLECTION], chroma+http://HOST:PORT/COLLECTION "
    f"or milvus+http://HOST:PORT/COLLECTION (default: {DEFAULT_STORE})"
)
_BATCH_HELP = "images per forward pass (default: 32)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="imgemb",
        description="Local image embeddings for LangChain: index folders of images into a "
        "vector store (FAISS, Chroma) and search them by text or by image.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_embed_parsers(sub)
    _add_index_parser(sub)
    _add_query_parsers(sub)
    _add_serve_parser(sub)
    _add_finetune(sub)
    from langchain_image_embeddings.scale.cli import add_parsers as add_scale_parsers

    add_scale_parsers(sub)  # embed-dataset, load
    return parser


def _add_embed_parsers(sub: Any) -> None:
    """``embed`` (a folder, no store), ``models`` and ``samples``."""
    embed = sub.add_parser("embed", help="embed every image in a folder and print a summary")
    embed.add_argument("directory", help="folder of images (searched recursively)")
    _add_model_options(
        embed, default=OFFLINE_MODEL, model_help=f"encoder spec (default: {OFFLINE_MODEL})"
    )
    embed.add_argument("--batch-size", type=int, default=32, help=_BATCH_HELP)
    embed.add_argument("--out", metavar="FILE.npy", help="write the vectors as a .npy file")
    embed.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_progress_options(embed)
    embed.set_defaults(func=_cmd_embed)

    models = sub.add_parser("models", help="list well-known encoder specs")
    models.set_defaults(func=_cmd_models)

    samples = sub.add_parser("samples", help="write real sample photos (scikit-image) to a folder")
    samples.add_argument("directory", help="folder to write the photos to (created)")
    samples.add_argument(
        "--no-copies", action="store_true", help="originals only, no transformed copies"
    )
    samples.set_defaults(func=_cmd_samples)


def _add_index_parser(sub: Any) -> None:
    """``index``: sync a folder into a store."""
    index = sub.add_parser("index", help="index (sync) a folder of images into a vector store")
    index.add_argument("directory", help="folder of images (searched recursively)")
    index.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=_STORE_HELP)
    _add_model_options(
        index,
        default=None,
        model_help=f"encoder spec (default: the store's model, else {OFFLINE_MODEL})",
    )
    index.add_argument("--batch-size", type=int, default=32, help=_BATCH_HELP)
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
        help='write one JSON line per input: {"input", "status", "code", "reason"}',
    )
    index.add_argument(
        "--faiss-index",
        metavar="KIND",
        help="FAISS stores: flat, hnsw, ivf-pq, auto (flat while small, HNSW, then IVF-PQ) or "
        "a faiss.index_factory string; default: the store's kind (new stores: flat)",
    )
    index.add_argument(
        "--recall-target",
        type=_recall_target,
        metavar="R",
        help="FAISS stores: recall@10 (0-1] that efSearch/nprobe are tuned to, recorded in the "
        "store; default: the store's (new stores: 0.95)",
    )
    index.add_argument(
        "--memory-budget",
        type=_memory_size,
        metavar="SIZE",
        help="FAISS stores: memory an HNSW index may take before --faiss-index auto picks "
        "IVF-PQ, e.g. 2GB or 512MiB, recorded in the store; default: the store's (new stores: "
        "half the machine's memory)",
    )
    index.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_progress_options(index)
    index.set_defaults(func=_cmd_index)


def _add_query_parsers(sub: Any) -> None:
    """``search``, ``info`` and ``duplicates``: read a store."""
    search = sub.add_parser("search", help="search a store by text (CLIP models) or by image")
    search.add_argument("query", nargs="?", help="text query (CLIP-type models)")
    search.add_argument("--image", metavar="PATH_OR_URL", help="query image: path or URL")
    search.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=_STORE_HELP)
    search.add_argument("-k", type=int, default=5, help="number of results (default: 5)")
    search.add_argument(
        "--filter",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="only results whose metadata KEY equals VALUE, e.g. format=JPEG (repeatable)",
    )
    _add_model_options(
        search,
        default=None,
        model_help="override the store's recorded model (default: the store's model)",
    )
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    search.set_defaults(func=_cmd_search)

    info = sub.add_parser("info", help="describe a store: kind, size, model")
    info.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=_STORE_HELP)
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.set_defaults(func=_cmd_info)

    duplicates = sub.add_parser(
        "duplicates", help="list groups of near-duplicate images in a store"
    )
    duplicates.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=_STORE_HELP)
    duplicates.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        metavar="T",
        help="relevance score in (0, 1] at or above which two images are near-duplicates "
        "(default: 0.9; crops, flips and re-encodes of one photo score above it)",
    )
    duplicates.add_argument("--json", action="store_true", help="print the groups as JSON")
    duplicates.set_defaults(func=_cmd_duplicates)


def _add_serve_parser(sub: Any) -> None:
    """``serve``: the search page and JSON API."""
    serve = sub.add_parser(
        "serve", help="serve a search page and JSON API over a store (extra [serve])"
    )
    serve.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=_STORE_HELP)
    _add_model_options(
        serve,
        default=None,
        model_help="override the store's recorded model (default: the store's model)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--max-k", type=int, default=100, help="largest k a search may ask for (default: 100)"
    )
    serve.add_argument(
        "--max-upload-mb",
        type=float,
        default=16.0,
        help="largest uploaded query image in MiB (default: 16)",
    )
    serve.add_argument(
        "--image-root",
        metavar="DIR",
        default=None,
        help="make thumbnails only of stored files under this folder",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default: info)",
    )
    serve.set_defaults(func=_cmd_serve)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``imgemb``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _no_stray_root_logging():
            return int(args.func(args))
    except BrokenPipeError:
        # `imgemb ... | head`: the reader left. Exit like a process killed by SIGPIPE, without
        # a traceback, and keep the interpreter's final flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ValueError as exc:  # malformed store spec, bad filter, invalid option values
        if isinstance(exc, ImageEmbeddingsError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INPUT_ERRORS
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except (EncoderError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except ImageEmbeddingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
