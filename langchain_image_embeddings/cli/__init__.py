"""Command line: ``imgemb``. Every command lives in this package, the only one (with
``serve/`` for HTTP) that prints or exits; nothing outside it imports from it.

Modules: ``common`` (defaults, argument types, model options, a store's model: the public
helpers every command module shares), ``exit_codes``, ``logs`` (stray root-logger lines), one
per command group (``embed``: embed / models / samples, ``index``, ``query``: search / info /
duplicates, ``serve``, ``dataset``: embed-dataset / load, ``finetune``), and this one: the
parser assembly and :func:`main`, which maps exceptions to exit codes.

Subcommands: ``embed DIR``, ``index DIR --store SPEC``, ``search "text" | --image X``,
``info``, ``models``, ``samples DIR``, ``duplicates``, ``serve`` (a search page and JSON API,
extra ``[serve]``; binds 127.0.0.1 unless ``--host`` says otherwise), ``eval`` (retrieval
quality and speed of models, runtimes, precisions and indexes side by side: ``eval.py``) and
``finetune`` when the training extra is there. ``bench MODEL`` measures the CPU runtimes and
stores the choice ``runtime="auto"`` uses.

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
(``{"input", "status": "ok"|"error", "code", "reason", "duplicate_of"}``) either way. A store another
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
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any

from langchain_image_embeddings._version import __version__
from langchain_image_embeddings.cli.bench import add_bench_parser
from langchain_image_embeddings.cli.common import OFFLINE_MODEL
from langchain_image_embeddings.cli.dataset import add_dataset_parsers
from langchain_image_embeddings.cli.embed import add_embed_parsers
from langchain_image_embeddings.cli.eval import add_eval_parser
from langchain_image_embeddings.cli.exit_codes import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INPUT_ERRORS,
    EXIT_MODEL,
    EXIT_STORE,
    EXIT_USAGE,
)
from langchain_image_embeddings.cli.index import add_index_parser
from langchain_image_embeddings.cli.logs import no_stray_root_logging
from langchain_image_embeddings.cli.models import add_models_parser
from langchain_image_embeddings.cli.query import add_query_parsers
from langchain_image_embeddings.cli.serve import add_serve_parser
from langchain_image_embeddings.encoders import absolute_local_model
from langchain_image_embeddings.errors import (
    EncoderError,
    ImageEmbeddingsError,
    MissingDependencyError,
    StoreError,
)

__all__ = ["build_parser", "main"]


def _add_finetune(sub: Any) -> None:
    """Register ``finetune`` when the training module is installed (issue 4)."""
    if importlib.util.find_spec("langchain_image_embeddings.training") is None:
        return
    if importlib.util.find_spec("langchain_image_embeddings.cli.finetune") is None:
        return
    from langchain_image_embeddings.cli.finetune import add_finetune_parser

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
  imgemb eval photos --runtime torch onnx            # which setting is best here?
  imgemb bench timm:efficientnet_lite0              # torch vs ONNX Runtime vs OpenVINO here

exit codes:
  0  success
  1  some inputs failed (unreadable images); index then wrote nothing unless --skip-errors
  2  usage error: bad arguments, malformed store spec, missing folder, nothing to index
  3  the model could not be loaded, or cannot do what was asked (text search, image-only model)
  4  other error
  5  store error: missing, corrupt, unreachable or locked store, or written by another model

Run 'imgemb COMMAND -h' for the options of a command.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="imgemb",
        # Raw formatting (for the epilog's tables) keeps line breaks as written: wrap by hand.
        description="Local image embeddings for LangChain: index folders of images into a\n"
        "vector store (FAISS, Chroma, Milvus) and search them by text or by image.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_embed_parsers(sub)
    add_models_parser(sub)  # models, models download
    add_index_parser(sub)
    add_query_parsers(sub)
    add_serve_parser(sub)
    _add_finetune(sub)
    add_dataset_parsers(sub)  # embed-dataset, load
    add_eval_parser(sub)
    add_bench_parser(sub)  # bench MODEL: measure the CPU runtimes, store auto's choice
    return parser


def _error_text(exc: ValueError) -> str:
    """The message of ``exc``; for a pydantic ``ValidationError`` (an option that
    ``ImageEmbeddings`` refused, e.g. ``--device banana``) only its messages, without the
    "1 validation error for ..." header and the link to the pydantic docs."""
    errors = getattr(exc, "errors", None)
    if type(exc).__module__.startswith("pydantic") and callable(errors):
        parts = [str(e.get("msg", "")).removeprefix("Value error, ") for e in errors()]
        return "; ".join(p for p in parts if p) or str(exc)
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``imgemb``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if isinstance(getattr(args, "model", None), str):
        args.model = absolute_local_model(args.model)
    try:
        with no_stray_root_logging():
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
        print(f"error: {_error_text(exc)}", file=sys.stderr)
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
