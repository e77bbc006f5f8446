"""``imgemb bench MODEL``: measure torch, ONNX Runtime and OpenVINO on this machine now, print
the table, and store the choice ``runtime="auto"`` uses from then on.

The same measurement ``runtime="auto"`` makes once per model and machine
(:func:`~langchain_image_embeddings.encoders.runtimes.choice.choose_runtime`): one batch of
real photos (the scikit-image samples, or ``--images DIR``) preprocessed by the model's own
pipeline, timed model-only in fp32, side by side; a runtime whose vectors are not torch's
(cosine < 0.9999) is never chosen. Run it after an upgrade, on a new machine, or when the
machine was busy during the automatic measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.cli.common import json_object
from langchain_image_embeddings.cli.exit_codes import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    import torch

    from langchain_image_embeddings.encoders.base import ImageEncoder
    from langchain_image_embeddings.encoders.runtimes.choice import RuntimeMeasurement

__all__ = ["add_bench_parser", "measurement_table", "remembered_runtime"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _photos(folder: str | None) -> list[Any]:
    if folder is not None:
        paths = sorted(
            str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES
        )
        if not paths:
            raise ValueError(f"--images {folder}: no image files found")
        return paths
    from langchain_image_embeddings.samples import sample_photos

    return list(sample_photos().values())


def measuring_batch(encoder: ImageEncoder, photos: list[Any], batch_size: int) -> torch.Tensor:
    """``batch_size`` photos (cycled) through the model's own preprocessing, as
    ``runtime="auto"`` sees its batches."""
    import torch

    from langchain_image_embeddings.pipeline import ImagePipeline

    pipeline = ImagePipeline(encoder, batch_size=batch_size, num_workers=0)
    tensors = [pipeline.load_and_preprocess(photos[i % len(photos)]) for i in range(batch_size)]
    return torch.stack(tensors)


def measurement_table(model: str, measurement: RuntimeMeasurement) -> str:
    """The measured rates as a table, one runtime a line, the chosen one marked."""
    from langchain_image_embeddings.encoders.runtimes.cpu import cpu_model

    shape = "x".join(map(str, measurement.batch_shape))
    lines = [
        f"{model}: batch {shape}, {measurement.threads} threads, {cpu_model()} "
        f"(model only, fp32, {measurement.seconds:.1f} s)",
        f"{'runtime':9} {'img/s':>8} {'x torch':>7} {'min cosine':>10}",
    ]
    for name in ("torch", "onnx", "openvino"):
        if name in measurement.images_per_second:
            rate = measurement.images_per_second[name]
            cosine = measurement.min_cosine.get(name)
            shown = "-" if cosine is None else f"{cosine:.6f}"
            mark = "  <- chosen" if name == measurement.chosen else ""
            lines.append(
                f"{name:9} {rate:>8.2f} {measurement.speedup(name):>7.2f} {shown:>10}{mark}"
            )
        elif name in measurement.rejected:
            lines.append(f"{name:9} {'-':>8} {'-':>7} {'-':>10}  {measurement.rejected[name]}")
    return "\n".join(lines)


def remembered_runtime(model: str, batch_size: int = 32) -> dict[str, Any]:
    """What ``runtime="auto"`` uses for ``model`` here (loads it; never measures): for
    ``imgemb info --runtimes``."""
    import torch

    from langchain_image_embeddings.encoders import create_encoder
    from langchain_image_embeddings.encoders.runtimes.choice import remembered_choice

    encoder = create_encoder(model, device="cpu")
    height, width = encoder.preprocess_config.input_size
    shape = (batch_size, 3, height, width)
    found = remembered_choice(encoder, shape, threads=torch.get_num_threads())
    if found is None:
        return {
            "model": model,
            "batch_shape": list(shape),
            "chosen": None,
            "note": f"not measured on this machine yet: 'imgemb bench {model}' measures now",
        }
    return {"model": model, **found.to_dict()}


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from langchain_image_embeddings.encoders import create_encoder
    from langchain_image_embeddings.encoders.runtimes.choice import choose_runtime

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.threads is not None:
        if args.threads < 1:
            print("error: --threads must be at least 1", file=sys.stderr)
            return EXIT_USAGE
        torch.set_num_threads(args.threads)
    kwargs: dict[str, Any] = dict(args.model_kwargs or {})
    if args.pretrained is not None:
        kwargs["pretrained"] = args.pretrained
    encoder = create_encoder(args.model, **{**kwargs, "device": "cpu"})
    encoder.load()
    pixels = measuring_batch(encoder, _photos(args.images), args.batch_size)
    measurement = choose_runtime(encoder, pixels, remeasure=not args.cached)
    if args.json:
        print(json.dumps({"model": args.model, **measurement.to_dict()}, indent=2))
        return EXIT_OK
    print(measurement_table(args.model, measurement))
    print(
        f'remembered in {measurement.entry}: runtime="auto" runs {measurement.chosen} for this '
        "model, batch shape and CPU from now on"
    )
    return EXIT_OK


def add_bench_parser(sub: Any) -> None:
    """``bench MODEL``: measure the runtimes now and store the choice."""
    bench = sub.add_parser(
        "bench",
        help="measure torch, ONNX Runtime and OpenVINO for a model on this machine (fp32) "
        'and store the choice runtime="auto" uses',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("model", metavar="MODEL", help="encoder spec, e.g. timm:efficientnet_lite0")
    bench.add_argument(
        "--pretrained", default=None, metavar="VALUE", help="weights tag or checkpoint path"
    )
    bench.add_argument(
        "--model-kwargs", type=json_object, default=None, metavar="JSON", help="encoder options"
    )
    bench.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="rows of the measuring batch (default: 32, ImageEmbeddings' default); the choice "
        "is stored per batch shape",
    )
    bench.add_argument(
        "--images", default=None, metavar="DIR", help="photos to measure on (default: samples)"
    )
    bench.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    bench.add_argument(
        "--cached",
        action="store_true",
        help="print the stored choice if there is one (measure only when there is none)",
    )
    bench.add_argument("--json", action="store_true", help="print the measurement as JSON")
    bench.set_defaults(func=_cmd_bench)
