"""``imgemb embed-dataset`` and ``imgemb load``: a corpus into Parquet shards, shards into a store.

Registered by :func:`langchain_image_embeddings.cli.build_parser` through
:func:`add_dataset_parsers`; like every command module this one prints. Exit codes are those of
:mod:`langchain_image_embeddings.cli.exit_codes`: ``embed-dataset`` exits 1 when some inputs
failed (they are listed; every other shard is written), 2 on a usage error (missing source,
an actor pool that does not fit the cluster), 5 when the output folder or the store holds
another model's vectors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from langchain_image_embeddings.cli.common import (
    DEFAULT_STORE,
    OFFLINE_MODEL,
    add_expected_rows_option,
    add_model_options,
    add_object_storage_options,
    add_progress_options,
    model_kwargs,
    object_storage_options,
    show_progress,
)
from langchain_image_embeddings.cli.exit_codes import EXIT_INPUT_ERRORS, EXIT_OK, EXIT_USAGE

__all__ = ["add_dataset_parsers"]


def _bar(args: argparse.Namespace, total: int, unit: str, desc: str) -> Any:
    if not show_progress(args):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True)


def _cmd_embed_dataset(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.errors import ImageLoadError
    from langchain_image_embeddings.scale.embed import EmbedSettings, ShardDone, embed_dataset
    from langchain_image_embeddings.scale.plan import plan_shards

    load_options = object_storage_options(args)
    try:
        plan = plan_shards(
            args.source,
            shard_size=args.shard_size,
            column=args.column,
            load_options=load_options,
            pdf=args.pdf,
        )
    except ImageLoadError as exc:  # a table in object storage, refused or unreadable
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not plan.total:
        print(f"error: no images in {plan.source}: nothing to embed", file=sys.stderr)
        return EXIT_USAGE
    bar = _bar(args, plan.total, "img", "embedding")

    def progress(done: ShardDone) -> None:
        if bar is not None:
            bar.update(done.images)
            bar.set_postfix(written=done.written, failed=done.failures, refresh=False)

    embeddings = ImageEmbeddings(
        args.model,
        model_kwargs=model_kwargs(args),
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.decode_workers,
        load_options=load_options,
    )
    try:
        if args.engine == "ray":
            from langchain_image_embeddings.scale.ray import RayOptions, embed_dataset_ray

            options = RayOptions(
                address=args.ray_address,
                num_actors=args.num_actors,
                cpus_per_actor=args.num_cpus,
                gpus_per_actor=args.num_gpus,
                local_cpus=args.local_cpus,
                progress_bars=show_progress(args),
                console_logs=not args.quiet,
            )
            summary = embed_dataset_ray(
                plan, args.out, EmbedSettings.of(embeddings), options, progress=progress
            )
        else:
            summary = embed_dataset(plan, args.out, embeddings, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    report = {"source": plan.source, "out": str(args.out), "model": embeddings.model_id}
    report.update(summary.as_dict())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"embedded {summary.embedded} of {summary.images} images ({len(summary.failures)} "
            f"failed) from {plan.source} with {embeddings.model_id} into {args.out} "
            f"[{summary.engine}]: {summary.shards_written} shards written, "
            f"{summary.shards_skipped} already complete, {report['seconds']} s, "
            f"{report['images_per_second']} img/s"
        )
        for source, code, reason in summary.failures:
            print(f"failed: {source}: {reason} [{code}]", file=sys.stderr)
        if summary.stale:
            print(
                f"warning: {len(summary.stale)} shard file(s) in {args.out} are not in this plan "
                f"(another source?): {', '.join(summary.stale[:5])}; 'imgemb load' would load them",
                file=sys.stderr,
            )
    return EXIT_INPUT_ERRORS if summary.failures else EXIT_OK


def _cmd_load(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.embeddings import ImageEmbeddings
    from langchain_image_embeddings.scale.load import load_shards
    from langchain_image_embeddings.scale.shards import read_shard_info, shard_files
    from langchain_image_embeddings.vectorstores import open_store

    if getattr(args, "milvus_import", None) and not args.store.startswith("milvus+"):
        raise ValueError(
            f"--milvus-import needs a Milvus store (milvus+http://HOST:PORT/COLLECTION), "
            f"not {args.store!r}"
        )
    files = shard_files(args.shards)
    first = read_shard_info(files[0])
    kwargs = {**first.model_kwargs, **model_kwargs(args)}
    embeddings = ImageEmbeddings(
        args.model or str(first.model_record["model"]),
        model_kwargs=kwargs,
        device=args.device,
    )
    total_rows = sum(read_shard_info(f).rows for f in files)
    store = open_store(
        args.store, embeddings, create=True, expected_rows=getattr(args, "expected_rows", None)
    )
    if getattr(args, "milvus_import", None):
        return _milvus_import(args, store, total_rows)
    bar = _bar(args, total_rows, "row", "loading")
    try:
        report = load_shards(
            store,
            args.shards,
            batch_size=args.batch_size,
            replace_changed=args.replace_changed,
            progress=None if bar is None else bar.update,
        )
        count = len(store)
    finally:
        if bar is not None:
            bar.close()
        store.close()
    result = report.result
    summary = {
        "shards": report.shards,
        "rows": report.rows,
        "store": args.store,
        "model": embeddings.model_id,
        "added": len(result.added),
        "already_in_store": len(result.skipped),
        "duplicates": len(result.duplicates),
        "failed_in_shards": len(result.failures),
        "total": count,
        "seconds": round(report.seconds, 2),
        "rows_per_second": round(report.rows_per_second, 1),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"loaded {summary['rows']} rows from {summary['shards']} shard(s) into {args.store}: "
            f"added {summary['added']}, already in store {summary['already_in_store']}, "
            f"duplicates {summary['duplicates']}, failed at embedding {summary['failed_in_shards']} "
            f"({count} in store, {summary['seconds']} s, {summary['rows_per_second']} rows/s)"
        )
    return EXIT_OK


def _milvus_import(args: argparse.Namespace, store: Any, total_rows: int) -> int:
    """``imgemb load --milvus-import``: the shards through Milvus import jobs."""
    import os

    from langchain_image_embeddings.images import ImageLoadOptions
    from langchain_image_embeddings.scale.bulk_import import import_shards
    from langchain_image_embeddings.vectorstores import parse_store_spec

    spec = parse_store_spec(args.store)
    host = f"[{spec.host}]" if ":" in spec.host else spec.host
    url = f"{spec.kind.partition('+')[2]}://{host}:{spec.port}"
    bar = _bar(args, total_rows, "row", "writing import files")
    last_state: list[str] = []

    def on_progress(state: Any) -> None:
        if show_progress(args) and [state.state] != last_state:
            last_state[:] = [state.state]
            print(
                f"import job {state.job_id}: {state.state} {state.progress}% "
                f"({state.imported_rows}/{state.total_rows} rows)",
                file=sys.stderr,
            )

    try:
        report = import_shards(
            store,
            args.shards,
            args.milvus_import,
            url=url,
            token=os.environ.get("MILVUS_TOKEN", ""),
            object_storage=ImageLoadOptions(
                allow_object_storage=True, allowed_hosts=tuple(args.trusted_endpoint or ())
            ),
            batch_size=args.batch_size,
            timeout_s=args.import_timeout,
            progress=None if bar is None else bar.update,
            on_progress=on_progress,
        )
        count = len(store)
    finally:
        if bar is not None:
            bar.close()
        store.close()
    files = report.files
    result = files.result
    summary = {
        "shards": files.shards,
        "rows": files.rows_read,
        "store": args.store,
        "import_files": files.keys,
        "jobs": [job.job_id for job in report.jobs],
        "imported": report.imported_rows,
        "added": len(result.added),
        "already_in_store": len(result.skipped),
        "duplicates": len(result.duplicates),
        "relinked": report.relinked,
        "failed_in_shards": len(result.failures),
        "total": count,
        "seconds": round(report.seconds, 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"imported {summary['imported']} rows from {summary['shards']} shard(s) into "
            f"{args.store} through {len(report.jobs)} Milvus import job(s) "
            f"({len(files.keys)} file(s) under {args.milvus_import}): already in store "
            f"{summary['already_in_store']}, duplicates {summary['duplicates']}, failed at "
            f"embedding {summary['failed_in_shards']} ({count} in store, {summary['seconds']} s)"
        )
    return EXIT_OK


def add_dataset_parsers(sub: Any) -> None:
    """Register ``embed-dataset`` and ``load`` on ``imgemb``'s subparsers."""
    _add_embed_dataset_parser(sub)
    _add_load_parser(sub)


def _add_embed_dataset_parser(sub: Any) -> None:
    embed = sub.add_parser(
        "embed-dataset",
        help="embed a folder or a table of URIs into Parquet shards (local or Ray engine)",
        description="Embed SRC into OUT/shard-NNNNNN.parquet, one row per image, each shard "
        "written atomically. A rerun skips complete shards; a killed run resumes.",
    )
    embed.add_argument("source", metavar="SRC", help="folder of images, or a .parquet/.csv of URIs")
    embed.add_argument("--out", required=True, metavar="DIR", help="folder of the shard files")
    embed.add_argument(
        "--column", default=None, help="URI column of a table SRC (default: uri, path or source)"
    )
    embed.add_argument(
        "--pdf",
        action="store_true",
        help="also embed PDFs: each page and each embedded figure is an image "
        "(file.pdf#page=N; extra [pdf]); a PDF that cannot be read is reported with its code",
    )
    embed.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process; ray: Ray Data (extra [ray]) (default: local)",
    )
    embed.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="join a running Ray cluster ('auto' or HOST:PORT); default: start a local Ray",
    )
    embed.add_argument(
        "--shard-size", type=int, default=1000, metavar="N", help="images per shard (default: 1000)"
    )
    add_model_options(
        embed, default=OFFLINE_MODEL, model_help=f"encoder spec (default: {OFFLINE_MODEL})"
    )
    embed.add_argument(
        "--batch-size", type=int, default=32, help="images per forward pass (default: 32)"
    )
    embed.add_argument(
        "--decode-workers",
        type=int,
        default=None,
        metavar="N",
        help="decode threads per model (default: the pipeline's; Ray CPU actors: --num-cpus)",
    )
    embed.add_argument(
        "--num-actors", type=int, default=None, help="Ray: models at once (default: as many as fit)"
    )
    embed.add_argument(
        "--num-cpus",
        type=float,
        default=1.0,
        help="Ray: CPUs per actor (default: 1; one CPU always stays free for reading)",
    )
    embed.add_argument(
        "--num-gpus", type=float, default=0.0, help="Ray: GPUs per actor (default: 0; 1 per GPU)"
    )
    embed.add_argument(
        "--local-cpus", type=int, default=None, help="Ray: CPUs of a local Ray (default: all)"
    )
    add_object_storage_options(embed)
    embed.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_progress_options(embed)
    embed.set_defaults(func=_cmd_embed_dataset)


def _add_load_parser(sub: Any) -> None:
    load = sub.add_parser(
        "load",
        help="bulk-load Parquet shards into a store without re-embedding",
        description="Add the vectors of SHARDS (a shard file or a folder of them) to a store. "
        "The shards' model must be the store's; a rerun adds nothing.",
    )
    load.add_argument("shards", metavar="SHARDS", help="shard folder or file")
    load.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="SPEC",
        help=f"store spec, as for 'imgemb index' (default: {DEFAULT_STORE})",
    )
    add_model_options(
        load, default=None, model_help="encoder spec (default: the one recorded in the shards)"
    )
    load.add_argument(
        "--batch-size",
        type=int,
        default=4096,
        help="rows read and written per step (default: 4096)",
    )
    load.add_argument(
        "--replace-changed",
        action="store_true",
        help="a path whose bytes changed leaves its old record (scans the store per batch)",
    )
    add_expected_rows_option(load)
    load.add_argument(
        "--milvus-import",
        default=None,
        metavar="URI",
        help="Milvus server stores: write import files to URI (s3://BUCKET/PREFIX in the "
        "server's own bucket; endpoint and keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID ...) "
        "and import them with Milvus import jobs instead of upserts (not Milvus Lite)",
    )
    load.add_argument(
        "--trusted-endpoint",
        action="append",
        default=None,
        metavar="HOST",
        help="--milvus-import: an object-storage endpoint host written to even on a loopback "
        "or private address (a local MinIO) (repeatable)",
    )
    load.add_argument(
        "--import-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="--milvus-import: give up on an import job after this long (default: wait)",
    )
    load.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_progress_options(load)
    load.set_defaults(func=_cmd_load)
