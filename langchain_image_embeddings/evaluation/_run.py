"""``evaluate``: run queries against one store per setting, or against an existing store."""

from __future__ import annotations

import base64
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.documents import Document
from PIL import Image

from langchain_image_embeddings.evaluation._augment import label_free_queries
from langchain_image_embeddings.evaluation._metrics import CUTOFF, mean_metrics, query_metrics
from langchain_image_embeddings.evaluation._queries import (
    Corpus,
    Query,
    class_queries,
    list_corpus,
    load_queries,
    normal_key,
)
from langchain_image_embeddings.evaluation._report import EvaluationReport, EvaluationRow

if TYPE_CHECKING:
    from langchain_core.vectorstores import VectorStore

    from langchain_image_embeddings.embeddings import ImageEmbeddings

__all__ = ["EvalSetting", "Mode", "evaluate", "settings_grid"]

Mode = Literal["auto", "queries", "classes", "label-free"]
ModelEntry = str | tuple[str, Mapping[str, Any]] | Mapping[str, Any]


@dataclass(frozen=True)
class EvalSetting:
    """One way to embed and index the corpus: a row of the comparison.

    Attributes:
        model: Encoder spec (``"timm:efficientnet_lite0"``).
        model_kwargs: Encoder options (``{"pretrained": None, "allow_random_weights": True}``
            for random weights).
        runtime: ``"torch"``, ``"onnx"`` or ``"openvino"`` (``ImageEmbeddings(runtime=)``).
        precision: ``"auto"``, ``"fp32"``, ... or ``"int8"`` (exported runtimes only).
        index: The FAISS store's index kind: ``"flat"``, ``"hnsw"``, ``"ivf-pq"``, ``"auto"``
            or a ``faiss.index_factory`` string.
        label: The name of the row (default: the model, "(random weights)" when
            ``pretrained`` is ``None``, and any other options).

    Example:
        >>> EvalSetting("timm:efficientnet_lite0", {"pretrained": None}).name
        'timm:efficientnet_lite0 (random weights)'
    """

    model: str
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    runtime: str = "torch"
    precision: str = "auto"
    index: str = "flat"
    label: str | None = None

    @property
    def name(self) -> str:
        """The row's label."""
        if self.label:
            return self.label
        options = dict(self.model_kwargs)
        name = self.model
        if "pretrained" in options and options.pop("pretrained") is None:
            options.pop("allow_random_weights", None)
            name += " (random weights)"
        if options:
            name += " " + json.dumps(options, sort_keys=True, separators=(",", ":"))
        return name

    @property
    def embedding_key(self) -> str:
        """Settings with the same key embed the corpus identically (only the index differs)."""
        return json.dumps(
            [self.model, dict(self.model_kwargs), self.runtime, self.precision],
            sort_keys=True,
            default=str,
        )


def _model_entry(entry: ModelEntry) -> tuple[str, dict[str, Any], str | None]:
    if isinstance(entry, str):
        return entry, {}, None
    if isinstance(entry, tuple):
        return entry[0], dict(entry[1]), None
    return str(entry["model"]), dict(entry.get("model_kwargs", {})), entry.get("label")


def settings_grid(
    models: Iterable[ModelEntry],
    *,
    runtimes: Sequence[str] = ("torch",),
    precisions: Sequence[str] = ("auto",),
    indexes: Sequence[str] = ("flat",),
) -> list[EvalSetting]:
    """Every combination of models, runtimes, precisions and index kinds, in that order.

    ``int8`` is paired with the exported runtimes only (torch has no int8 path): the grid
    leaves out ``torch`` x ``int8``.

    Args:
        models: Specs, ``(spec, model_kwargs)`` pairs or ``{"model", "model_kwargs",
            "label"}`` mappings.

    Example:
        >>> [s.runtime + "/" + s.precision for s in settings_grid(
        ...     ["timm:efficientnet_lite0"], runtimes=["torch", "onnx"], precisions=["fp32", "int8"])]
        ['torch/fp32', 'onnx/fp32', 'onnx/int8']
    """
    grid = []
    for entry in models:
        model, kwargs, label = _model_entry(entry)
        for runtime, precision, index in itertools.product(runtimes, precisions, indexes):
            if runtime == "torch" and precision == "int8":
                continue
            grid.append(EvalSetting(model, kwargs, runtime, precision, index, label))
    return grid


def evaluate(
    source: str | os.PathLike[str] | Sequence[str] | None = None,
    *,
    queries: str | os.PathLike[str] | Sequence[Query] | None = None,
    mode: Mode = "auto",
    models: Iterable[ModelEntry] | None = None,
    settings: Sequence[EvalSetting] | None = None,
    store: VectorStore | None = None,
    sample: int | None = None,
    copies: int = 2,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 32,
    show_progress: bool = False,
    progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Measure retrieval quality and speed, one row per setting.

    The corpus is ``source``: a folder of images (searched recursively) or a list of paths.
    Each setting embeds it with ``ImageEmbeddings(model, runtime=, precision=)`` into an
    in-memory ``FAISSImageStore(index=)``; each query is embedded with the same model and
    asked through the LangChain contract, ``similarity_search_by_vector``, or searched
    64 at a time with ``similarity_search_by_vectors`` where the store has it. Given a
    ``store``, that store is evaluated as is (one row; its embeddings embed the queries).

    Args:
        source: The corpus folder (or paths). With ``store``: only needed by the
            ``classes`` and ``label-free`` modes, to make the queries.
        queries: A query file (``.jsonl`` / ``.csv``, see :func:`load_queries`) or queries.
        mode: ``"queries"`` (the query file), ``"classes"`` (every image of a class folder
            queries the others of its class), ``"label-free"`` (augmented copies of a sample
            answered by their original); ``"auto"``: ``queries`` when given, else label-free.
        models: Compared side by side with the default runtime, precision and index (a
            shortcut for ``settings=settings_grid(models)``).
        settings: The rows (see :func:`settings_grid`).
        store: An existing LangChain ``VectorStore`` to evaluate as is.
        sample: Label-free: how many images get copies (default: all).
        copies: Label-free: augmented copies per sampled image.
        seed: Seeds the label-free sample and copies, and random model weights.
        device: Where the torch models run.
        batch_size: Images per forward pass when embedding the corpus.
        show_progress: A tqdm bar on stderr.
        progress: Called with a line of text as each setting starts.

    Returns:
        The :class:`EvaluationReport`.

    Raises:
        QueryFileError: A query file line that cannot be used (naming the line and why).
        ValueError: Nothing to evaluate, or a mode without what it needs.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.evaluation import evaluate, settings_grid

            report = evaluate(
                "photos",
                settings=settings_grid(
                    ["timm:efficientnet_lite0"], runtimes=["torch", "onnx"], indexes=["flat", "hnsw"]
                ),
            )
            print(report.to_markdown())
    """
    if store is None and source is None:
        raise ValueError("give a corpus (a folder of images) or a store to evaluate")
    corpus = None if source is None else list_corpus(source)
    chosen = _mode(mode, queries)
    asked = _queries(chosen, queries, corpus, sample=sample, copies=copies, seed=seed)
    origins = [q.origin for q in asked]
    corpus_name = "" if corpus is None else str(corpus.root or f"{len(corpus.items)} paths")
    if store is not None:
        row = _evaluate_store(store, asked, name=type(store).__name__, show_progress=show_progress)
        size = row.corpus_size
        return EvaluationReport(chosen, corpus_name, size, len(asked), seed, [row], origins)
    assert corpus is not None
    if settings is None:
        settings = settings_grid(models or ["timm:efficientnet_lite0"])
    if not settings:
        raise ValueError("no setting to evaluate: give models or settings")
    rows = _evaluate_settings(
        corpus,
        asked,
        settings,
        seed=seed,
        device=device,
        batch_size=batch_size,
        show_progress=show_progress,
        progress=progress,
    )
    return EvaluationReport(chosen, corpus_name, len(corpus.items), len(asked), seed, rows, origins)


def _mode(mode: Mode, queries: object) -> str:
    if mode == "auto":
        return "queries" if queries is not None else "label-free"
    if mode not in ("queries", "classes", "label-free"):
        raise ValueError(f"mode must be auto, queries, classes or label-free, got {mode!r}")
    if (mode == "queries") != (queries is not None):
        raise ValueError("queries are given with (and only with) mode 'queries'")
    return mode


def _queries(
    mode: str,
    queries: str | os.PathLike[str] | Sequence[Query] | None,
    corpus: Corpus | None,
    *,
    sample: int | None,
    copies: int,
    seed: int,
) -> list[Query]:
    if mode == "queries":
        assert queries is not None
        if isinstance(queries, (str, os.PathLike)):
            return load_queries(queries, corpus)
        return list(queries)
    if corpus is None:
        raise ValueError(f"mode {mode!r} makes its queries from the corpus: give the folder")
    if mode == "classes":
        return class_queries(corpus)
    return label_free_queries(corpus, sample=sample, copies=copies, seed=seed)


# -- one row -----------------------------------------------------------------------------


def _doc_keys(doc: Document) -> set[str]:
    """Every name a result answers to: its id, its URI and each of its sources."""
    keys = {doc.id} if doc.id else set()
    names = [doc.page_content, doc.metadata.get("source")]
    sources = doc.metadata.get("sources")
    if isinstance(sources, list):
        names.extend(sources)
    for name in names:
        if isinstance(name, str) and name and len(name) < 4096 and "\n" not in name:
            keys.update({name, normal_key(name)})
    return keys


def _query_vector(embeddings: Any, query: Query) -> list[float]:
    if query.text is not None:
        return list(embeddings.embed_query(query.text))
    if hasattr(embeddings, "embed_images_array"):  # ImageEmbeddings: any image input
        return [float(v) for v in embeddings.embed_images_array([query.image])[0]]
    image = query.image
    if isinstance(image, bytes):  # a stock embed_image(uris=...) takes URIs only
        image = "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
    return list(embeddings.embed_image(uris=[str(image)])[0])


#: Queries searched with one batched store call (``similarity_search_by_vectors``).
SEARCH_BATCH = 64


def _search_batch(store: Any, vectors: list[list[float]], ks: list[int]) -> list[list[Document]]:
    """Each vector's nearest ``k`` documents: one ``similarity_search_by_vectors`` call per
    distinct ``k`` on a store that has it (this package's stores), else one search each."""
    batched = getattr(store, "similarity_search_by_vectors", None)
    if batched is None:
        return [store.similarity_search_by_vector(v, k=k) for v, k in zip(vectors, ks, strict=True)]
    out: list[list[Document]] = [[] for _ in vectors]
    for k in sorted(set(ks)):
        picked = [i for i, ki in enumerate(ks) if ki == k]
        for i, docs in zip(picked, batched([vectors[i] for i in picked], k=k), strict=True):
            out[i] = list(docs)
    return out


def _ask(
    store: Any, embeddings: Any, queries: Sequence[Query], tick: Callable[[], None]
) -> tuple[list[dict[str, float]], list[int | None], list[float]]:
    """Per query: its metrics, the rank of its first relevant result, its latency in ms.

    Each query is embedded on its own (a search request's work, timed per query); the
    queries are searched :data:`SEARCH_BATCH` at a time, and a query's latency is its
    embedding time plus its share of its batch's search time."""
    per_query, ranks, latencies = [], [], []
    for begin in range(0, len(queries), SEARCH_BATCH):
        batch = queries[begin : begin + SEARCH_BATCH]
        vectors, embed_ms = [], []
        for query in batch:
            started = time.perf_counter()
            vectors.append(_query_vector(embeddings, query))
            embed_ms.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        found = _search_batch(store, vectors, [CUTOFF + len(q.exclude) for q in batch])
        share = 1000 * (time.perf_counter() - started) / len(batch)
        for query, docs, ms in zip(batch, found, embed_ms, strict=True):
            latencies.append(ms + share)
            hits = []
            for doc in docs:
                keys = _doc_keys(doc)
                if keys & query.exclude:
                    continue
                hits.append(bool(keys & query.relevant))
            per_query.append(query_metrics(hits, len(query.relevant)))
            ranks.append(
                next((rank for rank, hit in enumerate(hits[:CUTOFF], start=1) if hit), None)
            )
            tick()
    return per_query, ranks, latencies


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def _row(
    per_query: Sequence[Mapping[str, float]],
    ranks: list[int | None],
    latencies: Sequence[float],
    *,
    name: str,
    model: str,
    runtime: str,
    precision: str,
    index: str,
    index_built: str,
    images_per_second: float | None,
    corpus_size: int,
    model_kwargs: dict[str, Any] | None = None,
    failures: list[str] | None = None,
) -> EvaluationRow:
    """One setting's row: its fields and the measurements of its queries (as :func:`_ask`
    gives them: per query its metrics, its first relevant rank and its latency)."""
    return EvaluationRow(
        name=name,
        model=model,
        model_kwargs=model_kwargs if model_kwargs is not None else {},
        runtime=runtime,
        precision=precision,
        index=index,
        index_built=index_built,
        metrics=mean_metrics(per_query),
        images_per_second=images_per_second,
        latency_ms_p50=_percentile(latencies, 50),
        latency_ms_p95=_percentile(latencies, 95),
        corpus_size=corpus_size,
        queries=len(ranks),
        failures=failures if failures is not None else [],
        ranks=ranks,
    )


def _evaluate_store(
    store: VectorStore, queries: Sequence[Query], *, name: str, show_progress: bool
) -> EvaluationRow:
    from tqdm.auto import tqdm

    embeddings = store.embeddings
    if embeddings is None:
        raise ValueError(f"{name} has no embeddings to embed the queries with")
    from langchain_image_embeddings.embeddings import ImageEmbeddings

    one_by_one: Any = embeddings
    if isinstance(embeddings, ImageEmbeddings):  # decode each query in the calling thread
        one_by_one = embeddings.model_copy(update={"num_workers": 0})
    with tqdm(total=len(queries), desc="evaluate", disable=not show_progress) as bar:
        per_query, ranks, latencies = _ask(store, one_by_one, queries, lambda: bar.update(1))
    try:
        size = len(store)  # type: ignore[arg-type]
    except TypeError:  # a store without a length (langchain-core's InMemoryVectorStore)
        size = len(getattr(store, "store", ()))
    image = getattr(embeddings, "image_embeddings", embeddings)
    return _row(
        per_query,
        ranks,
        latencies,
        name=name,
        model=str(getattr(image, "model_id", type(embeddings).__name__)),
        runtime=str(getattr(image, "runtime", "-")),
        precision=str(getattr(image, "precision", "-")),
        index=str(getattr(store, "index_kind", "-")),
        index_built=str(
            getattr(store, "index_info", {}).get("kind", getattr(store, "index_kind", "-"))
        ),
        images_per_second=None,
        corpus_size=int(size),
    )


def _embeddings(
    setting: EvalSetting, *, seed: int, device: str, batch_size: int
) -> ImageEmbeddings:
    """The setting's model, built now, with random weights (if any) drawn from ``seed``."""
    import torch

    from langchain_image_embeddings.embeddings import ImageEmbeddings

    embeddings = ImageEmbeddings(
        setting.model,
        model_kwargs=dict(setting.model_kwargs),
        runtime=setting.runtime,
        precision=setting.precision,
        device=device,
        batch_size=batch_size,
    )
    # Random initialisation draws from torch's global generator: fork it, so that the same
    # seed gives the same random model (whatever the runtime), and the caller's generator is
    # left as it was. Weights load lazily, and an exported runtime exports at its first
    # batch: one warm-up image builds everything under the seed (and keeps an export or a
    # lazy initialisation out of the measured throughput).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        embeddings.embed_images_array([Image.new("RGB", (64, 64), (128, 128, 128))])
    return embeddings


def _evaluate_settings(
    corpus: Corpus,
    queries: Sequence[Query],
    settings: Sequence[EvalSetting],
    *,
    seed: int,
    device: str,
    batch_size: int,
    show_progress: bool,
    progress: Callable[[str], None] | None,
) -> list[EvaluationRow]:
    from tqdm.auto import tqdm

    from langchain_image_embeddings.vectorstores.faiss import FAISSImageStore

    groups: dict[str, list[int]] = {}
    for position, setting in enumerate(settings):
        groups.setdefault(setting.embedding_key, []).append(position)
    total = len(groups) * len(corpus.items) + len(settings) * len(queries)
    rows: dict[int, EvaluationRow] = {}
    with tqdm(total=total, desc="evaluate", unit="step", disable=not show_progress) as bar:
        for positions in groups.values():
            first = settings[positions[0]]
            if progress is not None:
                progress(f"embedding {len(corpus.items)} images: {first.name}, {first.runtime}")
            bar.set_postfix_str(f"{first.name} {first.runtime} {first.precision}")
            embeddings = _embeddings(first, seed=seed, device=device, batch_size=batch_size)
            keys, vectors, failures, speed = _embed_corpus(embeddings, corpus, bar.update)
            # A query is one image: decoded in the calling thread, as a search request is,
            # not through a decode pool started for it (a copy sharing the same encoder).
            one_by_one = embeddings.model_copy(update={"num_workers": 0})
            labels = {item.key: item.label for item in corpus.items}
            docs = [
                Document(page_content=k, metadata={"source": k, "label": labels[k]}, id=k)
                for k in keys
            ]
            for position in positions:
                setting = settings[position]
                if progress is not None:
                    progress(
                        f"asking {len(queries)} queries: {setting.name}, index {setting.index}"
                    )
                store = FAISSImageStore(embeddings, None, index=setting.index)
                store.upsert_vectors(keys, vectors, docs)
                store.build_index()
                per_query, ranks, latencies = _ask(
                    store, one_by_one, queries, lambda: bar.update(1)
                )
                rows[position] = _row(
                    per_query,
                    ranks,
                    latencies,
                    name=setting.name,
                    model=setting.model,
                    model_kwargs=dict(setting.model_kwargs),
                    runtime=setting.runtime,
                    precision=setting.precision,
                    index=setting.index,
                    index_built=str(store.index_info.get("kind", "flat")),
                    images_per_second=speed,
                    corpus_size=len(keys),
                    failures=failures,
                )
            del embeddings, one_by_one
    return [rows[position] for position in range(len(settings))]


def _embed_corpus(
    embeddings: ImageEmbeddings, corpus: Corpus, advance: Callable[[int], object]
) -> tuple[list[str], Any, list[str], float]:
    """The corpus vectors, the keys they belong to, the failed images (``key: reason``)
    and the throughput in images/s (the model is built and warm: see :func:`_embeddings`)."""
    keys = corpus.keys
    started = time.perf_counter()
    result = embeddings.try_embed_images(keys)
    seconds = time.perf_counter() - started
    advance(len(keys))
    embedded = [keys[i] for i in result.indices]
    failures = [f"{keys[e.index]}: {e}" if e.index is not None else str(e) for e in result.errors]
    speed = len(embedded) / seconds if seconds > 0 else float("inf")
    return embedded, result.vectors, failures, speed
