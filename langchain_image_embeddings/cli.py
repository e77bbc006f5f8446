"""Command line: ``imgemb``. The only module that prints or exits.

Exit codes: 0 success; 1 some inputs failed (nothing else wrong); 2 usage error;
3 model could not be loaded; 4 other error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from langchain_image_embeddings.errors import (
    EncoderError,
    ImageEmbeddingsError,
    MissingDependencyError,
)

EXIT_OK = 0
EXIT_INPUT_ERRORS = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_ERROR = 4

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")
OFFLINE_MODEL = "timm:efficientnet_lite0"


def _image_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from langchain_image_embeddings.embeddings import ImageEmbeddings

    root = Path(args.directory)
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    files = _image_files(root)
    embeddings = ImageEmbeddings(
        args.model, device=args.device, batch_size=args.batch_size, show_progress=not args.quiet
    )
    started = time.perf_counter()
    result = embeddings.try_embed_images([str(p) for p in files])
    elapsed = time.perf_counter() - started
    embedded = [files[i] for i in result.indices]
    summary = {
        "model": embeddings.model_id,
        "directory": str(root),
        "images": len(files),
        "embedded": len(embedded),
        "failed": len(result.errors),
        "dim": int(result.vectors.shape[1]),
        "seconds": round(elapsed, 2),
        "images_per_second": round(len(embedded) / elapsed, 1) if elapsed > 0 else None,
        "errors": [{"input": e.source, "code": e.code, "reason": e.reason} for e in result.errors],
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
                    f"  {path.relative_to(root)} -> {embedded[best].relative_to(root)} ({sims[row, best]:.3f})"
                )
        for err in result.errors:
            print(f"failed: {err.source}: {err.reason} [{err.code}]", file=sys.stderr)
    return EXIT_INPUT_ERRORS if result.errors else EXIT_OK


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="imgemb", description="Local image embeddings for LangChain."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    embed = sub.add_parser("embed", help="embed every image in a folder and print a summary")
    embed.add_argument("directory")
    embed.add_argument(
        "--model", default=OFFLINE_MODEL, help=f"encoder spec (default: {OFFLINE_MODEL})"
    )
    embed.add_argument("--device", default="auto")
    embed.add_argument("--batch-size", type=int, default=32)
    embed.add_argument("--out", help="write the vectors as a .npy file")
    embed.add_argument("--json", action="store_true", help="print the summary as JSON")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    embed.set_defaults(func=_cmd_embed)

    models = sub.add_parser("models", help="list well-known encoder specs")
    models.set_defaults(func=_cmd_models)

    samples = sub.add_parser("samples", help="write real sample photos (scikit-image) to a folder")
    samples.add_argument("directory")
    samples.add_argument(
        "--no-copies", action="store_true", help="originals only, no transformed copies"
    )
    samples.set_defaults(func=_cmd_samples)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``imgemb``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (EncoderError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except ImageEmbeddingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
