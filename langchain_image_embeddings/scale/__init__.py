"""Scale past one process: a corpus embedded into Parquet shards, then bulk-loaded.

The engine-free core cuts a source into a deterministic :class:`ShardPlan`, embeds each
shard with the package's own pipeline and writes one Parquet file per shard, atomically
(:func:`embed_dataset`, the ``local`` engine). :mod:`langchain_image_embeddings.scale.ray`
runs the same plan on Ray Data (extra ``[ray]``; never imported here). The shards load into
any image store without embedding again: :func:`load_shards` (``load_shards(store,
folder)``).

Example:
    .. code-block:: python

        from langchain_image_embeddings import ImageEmbeddings
        from langchain_image_embeddings.scale import embed_dataset, load_shards, plan_shards
        from langchain_image_embeddings.vectorstores import FAISSImageStore

        embeddings = ImageEmbeddings("timm:efficientnet_lite0")
        plan = plan_shards("photos", shard_size=1000)
        summary = embed_dataset(plan, "shards", embeddings)       # rerun: skips done shards
        report = load_shards(FAISSImageStore(embeddings, "index"), "shards")
"""

from __future__ import annotations

from langchain_image_embeddings.scale.embed import (
    EmbedSettings,
    RunSummary,
    ShardDone,
    embed_dataset,
    embed_shard,
)
from langchain_image_embeddings.scale.load import LoadReport, load_shards
from langchain_image_embeddings.scale.plan import (
    DEFAULT_SHARD_SIZE,
    Shard,
    ShardPlan,
    plan_shards,
    shard_file_name,
)
from langchain_image_embeddings.scale.shards import (
    ShardInfo,
    ShardRows,
    read_shard_info,
    shard_files,
    write_shard,
)

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "EmbedSettings",
    "LoadReport",
    "RunSummary",
    "Shard",
    "ShardDone",
    "ShardInfo",
    "ShardPlan",
    "ShardRows",
    "embed_dataset",
    "embed_shard",
    "load_shards",
    "plan_shards",
    "read_shard_info",
    "shard_file_name",
    "shard_files",
    "write_shard",
]
