"""The ``ray`` engine: the same shard plan run on Ray Data (extra ``[ray]``).

Ray only schedules: reads run as Ray tasks (:func:`read_batch`: bytes, hash and header of
each input, through :func:`~langchain_image_embeddings.scale.embed.read_input`), decoding
and the model run in an actor pool (:class:`ShardEmbedder`: one model per actor, its own
:class:`~langchain_image_embeddings.pipeline.ImagePipeline`), and the driver writes each
shard file atomically as soon as all its rows are back (Ray Data's ``write_parquet``
appends, so a rerun would double the rows). A rerun skips complete shards; a killed driver
loses only the shards not yet written.

Local runs start a private Ray (no dashboard, every server bound to 127.0.0.1, its temporary
folder under the output folder, token auth off so nothing is written to the home directory)
and shut it down afterwards; ``address="auto"`` or ``"HOST:PORT"`` joins an existing cluster
(:mod:`~langchain_image_embeddings.scale.ray_session`).

Sizing trap (measured): an actor pool that takes every CPU leaves none for the read tasks
and the job hangs without an error. :func:`size_actor_pool` keeps at least one CPU free.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.scale._deps import require_ray
from langchain_image_embeddings.scale.embed import (
    EmbedSettings,
    Progress,
    RunSummary,
    ShardDone,
    pending_shards,
    read_input,
    store_batch,
    writing_shards,
)
from langchain_image_embeddings.scale.plan import Shard, ShardPlan
from langchain_image_embeddings.scale.ray_session import (
    is_loopback_address,
    ray_data_console,
    ray_session,
)
from langchain_image_embeddings.scale.shards import (
    ShardRows,
    write_shard,
)
from langchain_image_embeddings.vectorstores._records import model_record

__all__ = [
    "RayOptions",
    "ShardEmbedder",
    "embed_dataset_ray",
    "read_batch",
    "size_actor_pool",
]

#: CPUs reserved per read task. Reading is I/O and hashing; a fraction lets two reads share
#: the CPU left free, and keeps Ray Data from fusing the reads into the actor pool.
_READ_CPUS = 0.5


@dataclass(frozen=True)
class RayOptions:
    """How the plan runs on Ray.

    Attributes:
        address: ``None`` starts a local Ray (shut down afterwards); ``"auto"`` or
            ``"HOST:PORT"`` joins a running cluster.
        num_actors: Models running at once (``None``: as many as fit, one CPU left free).
        cpus_per_actor: CPUs reserved per actor (its decode threads and, on CPU, the model).
        gpus_per_actor: GPUs per actor (1 = one model per GPU; fractions share a GPU).
        actor_batch_size: Images handed to an actor per call (``None``: 4 model batches,
            so that decoding overlaps the model inside the actor).
        read_batch_size: Inputs per read task call.
        local_cpus: CPUs of a local Ray (``None``: all of this machine's).
        temp_dir: Ray's temporary folder for a local Ray (``None``: ``OUT/_ray``).
        progress_bars: Show Ray Data's own progress bars.
        console_logs: Let Ray Data print its own INFO/WARNING lines on stderr (off: they
            still go to ``ray-data.log`` in Ray's session folder).
        actor_restarts: How often Ray may restart a dead actor (``-1``: without limit).
            ``None``: ``0`` on a private local Ray, one joined on 127.0.0.1 or an
            already-connected Ray of one node (one machine:
            a dead actor, e.g. killed for memory, fails the run, which a rerun resumes),
            Ray Data's default (without limit) on a cluster (another node takes over).

    Example:
        >>> RayOptions(address="auto", gpus_per_actor=1).gpus_per_actor
        1
    """

    address: str | None = None
    num_actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    actor_batch_size: int | None = None
    read_batch_size: int = 32
    local_cpus: int | None = None
    temp_dir: str | None = None
    progress_bars: bool = False
    console_logs: bool = False
    actor_restarts: int | None = None


def size_actor_pool(
    resources: dict[str, float], options: RayOptions, batches: int | None = None
) -> int:
    """How many actors to start: as many as fit with at least one CPU left for the read
    tasks, at most ``options.num_actors`` and at most ``batches``.

    Raises:
        ValueError: The pool cannot fit (naming the CPUs/GPUs asked and available): a pool
            taking every CPU would hang the job silently.

    Example:
        >>> size_actor_pool({"CPU": 2.0}, RayOptions(cpus_per_actor=1))
        1
    """
    cpus = float(resources.get("CPU", 0.0))
    gpus = float(resources.get("GPU", 0.0))
    if options.cpus_per_actor < 0 or options.gpus_per_actor < 0:
        raise ValueError("cpus_per_actor and gpus_per_actor must be >= 0")
    fit = math.inf
    if options.cpus_per_actor > 0:
        fit = math.floor((cpus - 1.0) / options.cpus_per_actor + 1e-9)
        if fit < 1:
            raise ValueError(
                f"an actor of {options.cpus_per_actor:g} CPU(s) leaves no CPU for the read "
                f"tasks on a Ray cluster of {cpus:g} CPU(s) (the job would hang without an "
                "error): lower cpus_per_actor (--num-cpus) or add CPUs"
            )
    if options.gpus_per_actor > 0:
        by_gpu = math.floor(gpus / options.gpus_per_actor + 1e-9)
        if by_gpu < 1:
            raise ValueError(
                f"actors of {options.gpus_per_actor:g} GPU(s) cannot run on a Ray cluster "
                f"with {gpus:g} GPU(s): use gpus_per_actor=0 (--num-gpus 0) or a GPU cluster"
            )
        fit = min(fit, by_gpu)
    if options.num_actors is not None:
        if options.num_actors < 1:
            raise ValueError(f"num_actors must be at least 1, not {options.num_actors}")
        if options.num_actors > fit:
            raise ValueError(
                f"{options.num_actors} actors of {options.cpus_per_actor:g} CPU(s) and "
                f"{options.gpus_per_actor:g} GPU(s) do not fit a Ray cluster of {cpus:g} CPU(s) "
                f"and {gpus:g} GPU(s) with one CPU left for the read tasks (at most {fit})"
            )
        fit = options.num_actors
    if fit == math.inf:
        fit = max(1, int(cpus) - 1)
    return int(max(1, min(fit, batches if batches else fit)))


def read_batch(batch: dict[str, Any], options: Any) -> dict[str, Any]:
    """Ray read task: each input's bytes and metadata (JSON), or its error code."""
    import numpy as np

    uris = [str(u) for u in batch["uri"]]
    data: list[bytes] = []
    metas: list[str] = []
    codes: list[str] = []
    reasons: list[str] = []
    for uri in uris:
        try:
            read = read_input(uri, options)
            meta, payload = read.metadata, read.data
        except ImageLoadError as err:
            data.append(b"")
            metas.append(json.dumps({"source": err.source}))
            codes.append(err.code)
            reasons.append(err.reason)
            continue
        data.append(payload)
        metas.append(json.dumps(meta))
        codes.append("")
        reasons.append("")
    return {
        "shard": np.asarray(batch["shard"], dtype=np.int64),
        "pos": np.asarray(batch["pos"], dtype=np.int64),
        "data": np.array(data, dtype=object),
        "meta": np.array(metas, dtype=object),
        "error_code": np.array(codes, dtype=object),
        "error": np.array(reasons, dtype=object),
    }


class ShardEmbedder:
    """Ray actor: one model, decoding and embedding the bytes the read tasks produced.

    Example:
        .. code-block:: python

            embedder = ShardEmbedder(EmbedSettings("timm:efficientnet_lite0"), device="cpu")
            out = embedder(read_batch({"shard": [0], "pos": [0], "uri": ["cat.jpg"]}, None))
    """

    def __init__(self, settings: EmbedSettings, device: str, num_workers: int | None) -> None:
        if num_workers is not None and settings.options.get("num_workers") is None:
            settings = settings.with_options(num_workers=num_workers)
        self.embeddings = settings.create(device=device)
        self.dim = int(self.embeddings.dim)  # loads the model once per actor

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        codes = [str(c) for c in batch["error_code"]]
        reasons = [str(r) for r in batch["error"]]
        errors: list[tuple[str, str] | None] = [
            (c, r) if c else None for c, r in zip(codes, reasons, strict=True)
        ]
        positions = [i for i, c in enumerate(codes) if not c]
        vectors = np.zeros((len(codes), self.dim), dtype=np.float32)
        payloads = [bytes(batch["data"][i]) for i in positions]
        for result in self.embeddings.pipeline("skip").run(payloads):
            store_batch(result.indices, result.vectors, result.errors, positions, vectors, errors)
        return {
            "shard": batch["shard"],
            "pos": batch["pos"],
            "meta": batch["meta"],
            "error_code": np.array([e[0] if e else "" for e in errors], dtype=object),
            "error": np.array([e[1] if e else "" for e in errors], dtype=object),
            "vector": vectors,
        }


@dataclass
class _Pending:
    """Rows of one shard received so far (the driver writes the shard when complete)."""

    shard: Shard
    dim: int
    got: int = 0
    metas: list[dict[str, Any] | None] = field(default_factory=list)
    errors: list[tuple[str, str] | None] = field(default_factory=list)
    vectors: Any = None

    def __post_init__(self) -> None:
        import numpy as np

        n = len(self.shard)
        self.metas = [None] * n
        self.errors = [None] * n
        self.vectors = np.zeros((n, self.dim), dtype=np.float32)

    def add(self, pos: int, meta: str, code: str, reason: str, vector: Any) -> bool:
        parsed = json.loads(meta)
        parsed.setdefault("source", self.shard.inputs[pos])
        # a failed row keeps what its read recorded, as the local engine does: the hash of
        # the bytes read when only the decode failed (a truncated JPEG), the source alone
        # when the read failed (the shard writes no other column of a failed row)
        self.metas[pos] = parsed
        if code:
            self.errors[pos] = (code, reason)
        else:
            self.vectors[pos] = vector
        self.got += 1
        return self.got == len(self.shard)


def embed_dataset_ray(
    plan: ShardPlan,
    out_dir: str | os.PathLike[str],
    settings: EmbedSettings,
    options: RayOptions | None = None,
    *,
    progress: Progress | None = None,
) -> RunSummary:
    """Embed every shard of ``plan`` not yet complete in ``out_dir``, on Ray Data.

    Args:
        plan: From :func:`~langchain_image_embeddings.scale.plan.plan_shards`.
        out_dir: Folder of the shard files (on a cluster: the driver's disk, or a shared one).
        settings: The model, rebuilt in every actor (see :meth:`EmbedSettings.of`).
        options: Cluster address and actor sizing (default: a local Ray, CPU actors).
        progress: Called after every shard (written or skipped).

    Returns:
        The same summary as the local engine (``engine="ray"``).

    Raises:
        ValueError: The actor pool does not fit the cluster (see :func:`size_actor_pool`).
        ModelMismatchError: ``out_dir`` holds shards of another model.
        MissingDependencyError: Ray Data is not installed.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.scale import EmbedSettings, plan_shards
            from langchain_image_embeddings.scale.ray import RayOptions, embed_dataset_ray

            plan = plan_shards("photos", shard_size=1000)
            settings = EmbedSettings("open_clip:ViT-B-32", batch_size=256)
            embed_dataset_ray(plan, "shards", settings, RayOptions(address="auto", gpus_per_actor=1))
    """
    options = options or RayOptions()
    require_ray()
    started = time.perf_counter()
    with writing_shards(out_dir, plan) as (out, stale):
        summary = RunSummary("ray", images=plan.total, stale=stale)
        probe = settings.create(device="cpu")  # the model record stores check (no device needed)
        record = model_record(probe)
        dim = int(record["dim"])
        del probe
        pending = pending_shards(plan, out, record, summary, progress)
        if pending:
            if options.actor_restarts is None:
                ray = require_ray()
                # A Ray this process already joined counts by its nodes: a ray.init() of the
                # caller's own, or start_local_ray, is one machine too.
                one_machine = (
                    is_loopback_address(options.address)
                    if options.address is not None
                    else not ray.is_initialized()
                    or sum(1 for node in ray.nodes() if node.get("Alive")) <= 1
                )
                options = dataclasses.replace(options, actor_restarts=0 if one_machine else -1)
            with ray_session(options, out) as ray:
                _run(ray, pending, out, settings, options, record, dim, summary, progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _run(
    ray: Any,
    pending: list[Shard],
    out: Path,
    settings: EmbedSettings,
    options: RayOptions,
    record: dict[str, Any],
    dim: int,
    summary: RunSummary,
    progress: Progress | None,
) -> None:
    import ray.data

    actor_batch = options.actor_batch_size or settings.batch_size * 4
    items = [
        {"shard": s.index, "pos": p, "uri": uri} for s in pending for p, uri in enumerate(s.inputs)
    ]
    batches = math.ceil(len(items) / actor_batch)
    actors = size_actor_pool(ray.cluster_resources(), options, batches)
    device = "cuda" if options.gpus_per_actor > 0 else "cpu"
    threads = None if device == "cuda" else max(1, int(options.cpus_per_actor))
    blocks = max(1, min(len(items) // max(1, options.read_batch_size), 1000))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    dataset = dataset.map_batches(
        read_batch,
        fn_kwargs={"options": settings.load_options},
        batch_size=options.read_batch_size,
        # Not the actors' CPU count: Ray Data would then fuse the reads into the actors.
        num_cpus=_READ_CPUS,
    )
    with warnings.catch_warnings():
        # max_restarts has no named parameter yet (Ray 2.60); only the generic keyword
        # arguments it goes through are deprecated.
        warnings.filterwarnings("ignore", message=".*ray_remote_args. is deprecated")
        dataset = dataset.map_batches(
            ShardEmbedder,
            fn_constructor_kwargs={"settings": settings, "device": device, "num_workers": threads},
            batch_size=actor_batch,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=options.cpus_per_actor,
            num_gpus=options.gpus_per_actor or None,
            **_restart_args(dataset, options.actor_restarts),
        )
    assembler = _ShardAssembler(pending, dim, out, record, dict(settings.model_kwargs), summary)
    with ray_data_console(options.progress_bars, options.console_logs):
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            assembler.take(batch, progress)


def _restart_args(dataset: Any, restarts: int | None) -> dict[str, Any]:
    """``max_restarts`` for the actor pool, where ``map_batches`` still takes Ray's remote
    arguments. With restarts on (Ray Data's default, -1) the driver logs one error line per
    actor on stderr (a restart could fail: its constructor arguments live in the object
    store), which a private one-machine Ray has no use for (see ``actor_restarts``)."""
    params = inspect.signature(dataset.map_batches).parameters.values()
    if restarts is None or not any(p.kind is p.VAR_KEYWORD for p in params):
        return {}
    return {"max_restarts": int(restarts)}


class _ShardAssembler:
    """The driver's side: rows coming back from the actors, in any order, collected per
    shard; each shard is written (atomically) as soon as all its rows are back."""

    def __init__(
        self,
        pending: list[Shard],
        dim: int,
        out: Path,
        record: dict[str, Any],
        model_kwargs: dict[str, Any],
        summary: RunSummary,
    ) -> None:
        self.by_index = {s.index: s for s in pending}
        self.partial: dict[int, _Pending] = {}
        self.dim, self.out, self.record = dim, out, record
        self.model_kwargs, self.summary = model_kwargs, summary

    def take(self, batch: dict[str, Any], progress: Progress | None) -> None:
        """Add one batch of actor output; write the shards it completes."""
        for i in range(len(batch["shard"])):
            index = int(batch["shard"][i])
            state = self.partial.get(index)
            if state is None:
                state = self.partial[index] = _Pending(self.by_index[index], self.dim)
            done = state.add(
                int(batch["pos"][i]),
                str(batch["meta"][i]),
                str(batch["error_code"][i]),
                str(batch["error"][i]),
                batch["vector"][i],
            )
            if done:
                rows = ShardRows(state.shard, state.metas, state.vectors, state.errors)
                write_shard(self.out, rows, self.record, self.model_kwargs)
                self.summary.record(rows)
                del self.partial[index]
                if progress is not None:
                    progress(ShardDone(state.shard, True, len(state.shard), rows.failures))
