"""``imgemb embed`` (a folder, no store) and ``samples``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.cli.common import (
    BATCH_HELP,
    OFFLINE_MODEL,
    add_model_options,
    add_progress_options,
    model_kwargs,
    output_file,
    show_progress,
)
from langchain_image_embeddings.cli.exit_codes import (
    EXIT_INPUT_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["add_embed_parsers"]


def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from langchain_image_embeddings.embeddings import ImageEmbeddings

    root = Path(args.directory)
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    out = _vectors_file(args.out) if args.out else None
    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader

    # The loader's walk: hidden files skipped, symlinks escaping the folder or looping reported.
    lister = ImageDirectoryLoader(root)
    files = list(lister.iter_paths())
    if not files and not lister.failures:
        print(f"error: no image files in {root}", file=sys.stderr)
        return EXIT_USAGE
    embeddings = ImageEmbeddings(
        args.model,
        model_kwargs=model_kwargs(args),
        device=args.device,
        batch_size=args.batch_size,
        show_progress=show_progress(args),
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
    if out is not None:
        np.save(out, result.vectors)
        summary["vectors_file"] = str(out)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['embedded']}/{summary['images']} images embedded with {summary['model']} "
            f"({summary['dim']}-d) in {summary['seconds']} s ({summary['images_per_second']} img/s)"
        )
        _print_neighbours(embedded, result.vectors, lister.root)
        for err in errors:
            print(f"failed: {err.source}: {err.reason} [{err.code}]", file=sys.stderr)
    return EXIT_INPUT_ERRORS if errors else EXIT_OK


def _print_neighbours(paths: list[Path], vectors: np.ndarray[Any, Any], root: Path) -> None:
    """Each image's nearest other image and their cosine (vectors are L2-normalised)."""
    import numpy as np

    if len(paths) < 2:
        return
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    print("nearest neighbour of each image (cosine):")
    for row, path in enumerate(paths):
        best = int(np.argmax(sims[row]))
        print(
            f"  {path.relative_to(root)} -> {paths[best].relative_to(root)} ({sims[row, best]:.3f})"
        )


def _vectors_file(name: str) -> Path:
    """Where ``embed --out`` writes: ``.npy`` added as ``numpy.save`` does, checked before any
    image is embedded (see :func:`output_file`)."""
    path = Path(name).expanduser()
    if path.suffix != ".npy":
        path = path.with_name(path.name + ".npy")
    return output_file("--out", path, example="vectors.npy")


def _cmd_samples(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.samples import write_sample_photos

    if Path(args.directory).exists() and not Path(args.directory).is_dir():
        print(f"error: {args.directory} is a file: give a folder to write to", file=sys.stderr)
        return EXIT_USAGE
    paths = write_sample_photos(args.directory, copies=not args.no_copies)
    print(f"wrote {len(paths)} photos to {args.directory}")
    return EXIT_OK


def add_embed_parsers(sub: Any) -> None:
    """``embed`` (a folder, no store) and ``samples`` (``models``: see ``cli.models``)."""
    embed = sub.add_parser("embed", help="embed every image in a folder and print a summary")
    embed.add_argument("directory", help="folder of images (searched recursively)")
    add_model_options(
        embed, default=OFFLINE_MODEL, model_help=f"encoder spec (default: {OFFLINE_MODEL})"
    )
    embed.add_argument("--batch-size", type=int, default=32, help=BATCH_HELP)
    embed.add_argument("--out", metavar="FILE.npy", help="write the vectors as a .npy file")
    embed.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_progress_options(embed)
    embed.set_defaults(func=_cmd_embed)

    samples = sub.add_parser("samples", help="write real sample photos (scikit-image) to a folder")
    samples.add_argument("directory", help="folder to write the photos to (created)")
    samples.add_argument(
        "--no-copies", action="store_true", help="originals only, no transformed copies"
    )
    samples.set_defaults(func=_cmd_samples)
