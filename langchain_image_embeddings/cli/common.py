"""What every ``imgemb`` command shares: defaults, argument types, the model options and
progress flags, and how a command finds the model of a store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.errors import StoreError

if TYPE_CHECKING:
    from langchain_image_embeddings.images import ImageLoadOptions

__all__ = [
    "add_expected_rows_option",
    "BATCH_HELP",
    "DEFAULT_STORE",
    "OFFLINE_MODEL",
    "STORE_HELP",
    "add_model_options",
    "add_object_storage_options",
    "add_progress_options",
    "json_object",
    "key_value",
    "memory_size",
    "model_kwargs",
    "object_storage_options",
    "output_file",
    "recall_target",
    "row_count",
    "recorded_model",
    "show_progress",
    "store_model",
]

OFFLINE_MODEL = "timm:efficientnet_lite0"
"""The default model of the commands: its weights ship with a package, so it runs offline."""
DEFAULT_STORE = "faiss:imgemb-index"
"""The store a command uses without ``--store``."""


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars on a terminal (or with ``--progress``); never with ``--quiet``."""
    if args.quiet:
        return False
    return bool(args.progress) or sys.stderr.isatty()


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--model-kwargs`` JSON, with ``--pretrained``, ``--runtime`` and ``--precision`` on
    top (``ImageEmbeddings`` lifts ``runtime`` / ``precision`` out of ``model_kwargs``)."""
    kwargs: dict[str, Any] = dict(args.model_kwargs or {})
    if args.pretrained is not None:
        kwargs["pretrained"] = args.pretrained
    for name in ("runtime", "precision"):
        if getattr(args, name, None) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def output_file(flag: str, path: Path, *, example: str) -> Path:
    """``path`` for a command to write to, its folder made now: checked before the work, so a
    bad path is a usage error, not a traceback once every image is embedded.

    Raises:
        ValueError: ``path`` is a folder, or its folder cannot be made.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot create its folder: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder: give a file name such as {example}")
    return path


def json_object(text: str) -> dict[str, Any]:
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


def recall_target(text: str) -> float:
    """``argparse`` type of ``--recall-target``: a float in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a recall in (0, 1], e.g. 0.95")
    return value


def row_count(text: str) -> int:
    """``argparse`` type of ``--expected-rows``: a positive count (``1000000``, ``1_000_000``,
    ``1e6``)."""
    try:
        value = float(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0.0
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive row count, e.g. 1000000")
    return int(value)


def add_expected_rows_option(parser: argparse.ArgumentParser) -> None:
    """``--expected-rows N``: the rows a FAISS store's index is planned for."""
    parser.add_argument(
        "--expected-rows",
        type=row_count,
        metavar="N",
        help="FAISS stores: the rows the index is planned for when the store will grow past "
        "what it holds (IVF lists and training sample sized for N; a plan that could never "
        "train is refused before anything is written), recorded in the store; default: the "
        "store's (new stores: the rows held)",
    )


def memory_size(text: str) -> int:
    """``argparse`` type of ``--memory-budget``: a size such as ``2GB``, in bytes."""
    from langchain_image_embeddings.vectorstores.faiss._index import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def key_value(text: str) -> tuple[str, str]:
    """``argparse`` type of ``--filter``: ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. format=JPEG), got {text!r}")
    return key.strip(), value


def recorded_model(spec: str) -> str | None:
    """The model an existing store was written with (without loading it), else ``None``."""
    from langchain_image_embeddings.vectorstores import store_info

    try:
        model = store_info(spec).get("model")
    except StoreError:
        return None
    return str(model) if model else None


def store_model(spec: str) -> str:
    """The model a store that is only read (``search``, ``serve``) was written with.

    Raises:
        StoreError: The store is missing, unreachable or corrupt (its own reason is kept:
            "no store" was said of a Chroma server that was merely down), or records no model.
    """
    from langchain_image_embeddings.vectorstores import store_info

    try:
        model = store_info(spec).get("model")
    except StoreError as exc:
        raise StoreError(
            f"cannot open the store {spec}: {exc} (if it does not exist yet, run 'imgemb index' "
            "first)"
        ) from exc
    if not model:
        raise StoreError(f"the store {spec} records no model: pass --model SPEC")
    return str(model)


def add_model_options(
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
        type=json_object,
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
        choices=("auto", "torch", "onnx", "openvino"),
        default=None,
        help="inference runtime: auto (default: torch, and on a CPU for big runs the fp32 "
        "runtime measured fastest here, see 'imgemb bench'), torch, onnx (ONNX Runtime, "
        "extra [onnx]) or "
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


def add_object_storage_options(parser: argparse.ArgumentParser) -> None:
    """``--allow-object-storage`` and ``--trusted-endpoint`` (read back by
    :func:`object_storage_options`)."""
    parser.add_argument(
        "--allow-object-storage",
        action="store_true",
        help="read s3://, gs://, hdfs://, abfs:// ... inputs through pyarrow (default: refused "
        "[remote_disabled]); endpoints and credentials come from the environment "
        "(AWS_ENDPOINT_URL ...), never from the URI",
    )
    parser.add_argument(
        "--trusted-endpoint",
        action="append",
        default=None,
        metavar="HOST",
        help="an object-storage endpoint host read even on a loopback or private address "
        "(a local MinIO, an HDFS namenode) (repeatable; default: such endpoints are refused "
        "[blocked_url])",
    )


def object_storage_options(args: argparse.Namespace) -> ImageLoadOptions:
    """The :class:`~langchain_image_embeddings.images.ImageLoadOptions` of the flags of
    :func:`add_object_storage_options`."""
    from langchain_image_embeddings.images import ImageLoadOptions

    return ImageLoadOptions(
        allow_object_storage=bool(args.allow_object_storage),
        allowed_hosts=tuple(args.trusted_endpoint or ()),
    )


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """``--progress`` and ``--quiet`` (read back by :func:`show_progress`)."""
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars even when stderr is not a terminal",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


STORE_HELP = (
    "store spec: faiss:PATH, chroma:PATH[#COLLECTION], chroma+http://HOST:PORT/COLLECTION "
    f"or milvus+http://HOST:PORT/COLLECTION (default: {DEFAULT_STORE})"
)
"""The help text of every command's ``--store``."""
BATCH_HELP = "images per forward pass (default: 32)"
"""The help text of every command's ``--batch-size``."""
