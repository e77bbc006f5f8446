"""Scale benchmark: images/s of one process against the shard engines, side by side.

Measured in one run, on the same corpus and model:

(a) ``single``: ``ImageEmbeddings.embed_images_array(files)`` in this process, no shards;
(b) ``local``: ``embed_dataset`` (the local engine: hash + header per file, the same
    pipeline, one Parquet file per shard, atomically);
(c) ``ray``: ``embed_dataset_ray`` on a local Ray started here (reads as tasks, the model in
    an actor pool with one CPU left for the reads). ``ray.init`` is timed on its own and
    reported apart from the run; the run itself includes the actors loading their models.

The cases run in interleaved rounds (``--rounds``, best round kept), so load from other jobs
on a shared machine reaches every case alike.

Every engine's rate is also given as a ratio to (a), so Ray's overhead on this machine is
visible. Then the local engine's shards are bulk-loaded (``load_shards``, what ``imgemb
load`` runs) into a new FAISS folder, a new embedded Chroma folder, and the FAISS folder
again (a rerun that adds nothing): rows/s of each, no model involved. With ``--gpu`` the same is done on CUDA: (a) on one GPU and (c) with one actor per
GPU (``gpus_per_actor=1``), for a GPU session to run.

Usage::

    python benchmarks/scale.py --images 300                 # CPU: Lite0, ~2 min on 2 cores
    python benchmarks/scale.py --gpu --images 20000 --model open_clip:ViT-B-32 \\
        --model-kwargs '{"pretrained": null, "allow_random_weights": true}' --batch-size 256

The corpus is generated from scikit-image's photos (random crops resized to ``--size``,
JPEG quality 90) under ``--work`` and reused between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_corpus(root: Path, count: int, size: tuple[int, int]) -> list[str]:
    """``count`` JPEGs of ``size`` cut from the sample photos (cached under ``root``)."""
    from langchain_image_embeddings.samples import sample_photos

    folder = root / f"corpus-{count}-{size[0]}x{size[1]}"
    files = sorted(str(p) for p in folder.glob("*.jpg")) if folder.is_dir() else []
    if len(files) == count:
        return files
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(0)
    photos = list(sample_photos().values())
    for n in range(count):
        photo = photos[n % len(photos)]
        w, h = photo.size
        cw, ch = rng.randint(w // 2, w), rng.randint(h // 2, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        photo.crop((x, y, x + cw, y + ch)).resize(size).save(folder / f"{n:06d}.jpg", quality=90)
    return sorted(str(p) for p in folder.glob("*.jpg"))


def measure_loads(shards: Path, embeddings: Any, work: Path) -> dict[str, Any]:
    """Rows/s of bulk-loading ``shards`` into a new FAISS folder, a new embedded Chroma
    folder and the FAISS folder again (adds nothing)."""
    from langchain_image_embeddings.scale.load import load_shards
    from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore

    out: dict[str, Any] = {}
    faiss_dir, chroma_dir = work / "load-faiss", work / "load-chroma"
    for folder in (faiss_dir, chroma_dir):
        shutil.rmtree(folder, ignore_errors=True)
    cases = {
        "faiss": lambda: FAISSImageStore(embeddings, faiss_dir),
        "chroma": lambda: ChromaImageStore.persistent(chroma_dir, embeddings),
        "faiss_rerun": lambda: FAISSImageStore(embeddings, faiss_dir),
    }
    for name, open_store in cases.items():
        with open_store() as store:
            report = load_shards(store, shards)
        out[name] = {
            "rows": report.rows,
            "added": len(report.result.added),
            "seconds": round(report.seconds, 3),
            "rows_per_second": round(report.rows_per_second, 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the generated JPEGs")
    parser.add_argument("--model", default="timm:efficientnet_lite0")
    parser.add_argument("--model-kwargs", type=json.loads, default={})
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best kept)")
    parser.add_argument("--gpu", action="store_true", help="CUDA: one GPU vs one actor per GPU")
    parser.add_argument("--cpus-per-actor", type=float, default=None)
    parser.add_argument("--work", default=None, help="folder for the corpus and the shards")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args()

    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.scale import EmbedSettings, embed_dataset, plan_shards
    from langchain_image_embeddings.scale.ray import RayOptions, embed_dataset_ray
    from langchain_image_embeddings.scale.ray_session import start_local_ray, stop_local_ray

    work = Path(args.work or Path(tempfile.gettempdir()) / "imgemb-scale-bench")
    width, height = (int(v) for v in args.size.split("x"))
    files = make_corpus(work, args.images, (width, height))
    device = "cuda" if args.gpu else "cpu"
    cpus = os.cpu_count() or 1
    results: dict[str, Any] = {
        "images": len(files),
        "size": args.size,
        "model": args.model,
        "device": device,
        "cpu_cores": cpus,
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
    }

    embeddings = ImageEmbeddings(
        args.model, model_kwargs=args.model_kwargs, device=device, batch_size=args.batch_size
    )
    embeddings.encoder.load()
    embeddings.embed_images_array(files[: args.batch_size])  # warm-up (allocator, autotune)

    plan = plan_shards(files, shard_size=args.shard_size)

    import ray

    temp = tempfile.mkdtemp(prefix="imgemb-ray-")
    started = time.perf_counter()
    start_local_ray(temp)
    init = time.perf_counter() - started
    rounds: dict[str, list[float]] = {"single": [], "local": [], "ray": []}
    try:
        resources = ray.cluster_resources()
        if args.gpu:
            gpus = int(resources.get("GPU", 0))
            options = RayOptions(
                num_actors=gpus,
                gpus_per_actor=1,
                cpus_per_actor=args.cpus_per_actor or max(1.0, (cpus - 2) // max(1, gpus)),
                actor_batch_size=args.batch_size * 4,
            )
        else:
            options = RayOptions(cpus_per_actor=args.cpus_per_actor or 1.0)
        settings = EmbedSettings.of(embeddings).with_options(device=device)
        # Interleaved rounds, best kept: other jobs on a shared machine hit every case alike.
        for _ in range(args.rounds):
            started = time.perf_counter()
            embeddings.embed_images_array(files)
            rounds["single"].append(time.perf_counter() - started)
            out = work / "shards-local"
            shutil.rmtree(out, ignore_errors=True)
            rounds["local"].append(embed_dataset(plan, out, embeddings).seconds)
            out = work / "shards-ray"
            shutil.rmtree(out, ignore_errors=True)
            rounds["ray"].append(embed_dataset_ray(plan, out, settings, options).seconds)
    finally:
        stop_local_ray()
        shutil.rmtree(temp, ignore_errors=True)
    from langchain_image_embeddings.scale.ray import size_actor_pool

    for name, times in rounds.items():
        best = min(times)
        results[name] = {
            "seconds": round(best, 2),
            "rounds_seconds": [round(t, 2) for t in times],
            "images_per_second": len(files) / best,
        }
    results["ray"].update(
        {
            "init_seconds": round(init, 2),
            "images_per_second_with_init": len(files) / (min(rounds["ray"]) + init),
            "actors": size_actor_pool(resources, options),
            "cpus_per_actor": options.cpus_per_actor,
            "gpus_per_actor": options.gpus_per_actor,
        }
    )
    base = results["single"]["images_per_second"]
    for name in ("single", "local", "ray"):
        case = results[name]
        case["images_per_second"] = round(case["images_per_second"], 1)
        case["ratio_to_single"] = round(case["images_per_second"] / base, 2)
    ray_case = results["ray"]
    ray_case["images_per_second_with_init"] = round(ray_case["images_per_second_with_init"], 1)
    ray_case["ratio_with_init"] = round(ray_case["images_per_second_with_init"] / base, 2)

    print(
        f"{len(files)} images {args.size}, {args.model} on {device} ({cpus} CPU cores), "
        f"batch {args.batch_size}, shards of {args.shard_size}"
    )
    for name in ("single", "local", "ray"):
        case = results[name]
        extra = ""
        if name == "ray":
            extra = (
                f"  (+ ray.init {case['init_seconds']} s: {case['images_per_second_with_init']} "
                f"img/s, {case['ratio_with_init']}x; {case['actors']} actor(s))"
            )
        print(
            f"  {name:7} {case['images_per_second']:8.1f} img/s  {case['ratio_to_single']:.2f}x "
            f"({case['seconds']} s){extra}"
        )
    results["load"] = measure_loads(work / "shards-local", embeddings, work)
    for name, case in results["load"].items():
        print(
            f"  load into {name:11} {case['rows_per_second']:8.1f} rows/s "
            f"({case['rows']} rows, {case['added']} added, {case['seconds']} s)"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
