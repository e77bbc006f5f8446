"""Retrievers over image stores: text-to-image and image-to-image, on any LangChain store.

Both are LangChain :class:`~langchain_core.retrievers.BaseRetriever` objects, so they work
with ``invoke`` / ``ainvoke`` / ``batch`` and inside LCEL chains. ``k`` is set in the
constructor (or in ``search_kwargs``, LangChain's ``as_retriever`` spelling) and can be
overridden per call (``retriever.invoke(query, k=3)``). Each returned document carries its
relevance score (``[0, 1]``) in ``metadata["score"]`` (similarity search; MMR results carry
none).

The store is one of this package's image stores or **any** LangChain ``VectorStore`` built
on this package's embeddings (``ImageDocumentEmbeddings`` or ``ImageEmbeddings``):
``InMemoryVectorStore``, langchain-qdrant, langchain-chroma, FAISS ... The retriever embeds
the query itself, by the package's query rule
(:func:`~langchain_image_embeddings.document_embeddings.resolve_query_mode`), and searches
with the store's ``similarity_search_with_score_by_vector`` (or
``similarity_search_by_vector``) and ``max_marginal_relevance_search_by_vector``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManager,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list, run_in_executor
from pydantic import ConfigDict, Field, field_validator, model_validator

from langchain_image_embeddings.document_embeddings import (
    ImageDocumentEmbeddings,
    QueryMode,
    resolve_query_mode,
)
from langchain_image_embeddings.embeddings import ImageEmbeddings, looks_like_image_uri
from langchain_image_embeddings.errors import EncoderError, ImageLoadError
from langchain_image_embeddings.vectorstores import relevance_from_cosine

if TYPE_CHECKING:
    from langchain_image_embeddings.images import ImageInput

__all__ = ["DocumentKinds", "ImageToImageRetriever", "SearchType", "TextToImageRetriever"]

#: ``"similarity_score_threshold"`` is LangChain's spelling of a similarity search with a
#: ``score_threshold`` (``as_retriever(search_type=..., search_kwargs=...)``).
SearchType = Literal["similarity", "mmr", "similarity_score_threshold"]
#: Which stored documents a search returns: images, text documents stored beside them
#: (``metadata["kind"] == "text"``: captions, OCR, alt text), or both.
DocumentKinds = Literal["all", "image", "text"]
_OVERRIDABLE = (
    "k",
    "score_threshold",
    "filter",
    "search_type",
    "fetch_k",
    "lambda_mult",
    "query_mode",
    "document_kinds",
    "return_parents",
)
# What the retrievers call on one of this package's stores (every ImageVectorStore has it).
_STORE_API = (
    "text_query_vector",
    "image_query_vector",
    "similarity_search_with_score_by_vector",
    "max_marginal_relevance_search_by_vector",
)


def _image_model_of(store: Any) -> ImageEmbeddings | None:
    """The image model behind a stock store's embeddings (``None``: not ours)."""
    embeddings = getattr(store, "embeddings", None)
    if isinstance(embeddings, ImageDocumentEmbeddings):
        return embeddings.image_embeddings
    if isinstance(embeddings, ImageEmbeddings):
        return embeddings
    return None


class _ImageStoreRetriever(BaseRetriever):
    store: Any = Field(
        description="An image store of this package, or any LangChain VectorStore whose "
        "embeddings are ImageDocumentEmbeddings / ImageEmbeddings."
    )
    k: int = Field(default=4, gt=0)
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    filter: Any = None
    search_type: SearchType = "similarity"
    fetch_k: int = Field(default=20, gt=0)
    lambda_mult: float = Field(default=0.5, ge=0.0, le=1.0)
    query_mode: QueryMode = "auto"
    document_kinds: DocumentKinds = "all"
    """Search images and the text documents stored beside them (``"all"``), or one kind."""
    return_parents: bool = True
    """A matching text document is returned as its parent image (``metadata["parent_id"]``),
    once per image, with the text in ``metadata["matched_text"]``."""
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """LangChain's ``as_retriever`` spelling: ``{"k": 3, "filter": ..., "fetch_k": ...}``;
    its values take the place of the fields of the same names."""

    # An unknown constructor option (a typo) is an error, as it is per call, instead of
    # being silently dropped by pydantic.
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _spread_search_kwargs(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("search_kwargs"):
            extra = dict(data["search_kwargs"])
            unknown = set(extra) - set(_OVERRIDABLE)
            if unknown:
                raise ValueError(
                    f"search_kwargs: unknown options {sorted(unknown)}; allowed: {_OVERRIDABLE}"
                )
            data = {**data, **extra, "search_kwargs": {}}
        return data

    @model_validator(mode="after")
    def _check_threshold_search(self) -> _ImageStoreRetriever:
        if self.search_type == "similarity_score_threshold" and self.score_threshold is None:
            raise ValueError(
                "search_type 'similarity_score_threshold' needs a score_threshold "
                "(e.g. search_kwargs={'score_threshold': 0.8})"
            )
        return self

    @field_validator("store")
    @classmethod
    def _check_store(cls, store: Any) -> Any:
        # Checked here, not at the first invoke, where a store without image embeddings
        # would fail with a raw AttributeError deep in the search.
        if all(hasattr(store, name) for name in _STORE_API) or _image_model_of(store):
            return store
        raise ValueError(
            f"store must be an image store of this package (FAISSImageStore, ChromaImageStore, "
            f"MilvusImageStore) or a LangChain VectorStore built on ImageDocumentEmbeddings / "
            f"ImageEmbeddings, not {type(store).__name__} with "
            f"{type(getattr(store, 'embeddings', None)).__name__}: for another store use "
            "store.as_retriever()"
        )

    @property
    def _ours(self) -> bool:
        return all(hasattr(self.store, name) for name in _STORE_API)

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        # the tracing metadata LangChain's own VectorStoreRetriever reports
        params = super()._get_ls_params(**kwargs)
        params["ls_vector_store_provider"] = type(self.store).__name__
        embeddings = getattr(self.store, "embeddings", None)
        if embeddings is not None:
            params["ls_embedding_provider"] = type(embeddings).__name__
        return params

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - set(_OVERRIDABLE)
        if unknown:
            raise TypeError(f"unexpected search options {sorted(unknown)}; allowed: {_OVERRIDABLE}")
        opts = {name: kwargs.get(name, getattr(self, name)) for name in _OVERRIDABLE}
        if kwargs:
            # the constructor's checks for per-call values too (pydantic's ValidationError
            # is a ValueError naming the option)
            checked = type(self).model_validate({"store": self.store, **opts})
            opts = {name: getattr(checked, name) for name in _OVERRIDABLE}
        return opts

    def _check_query(self, query: Any, mode: QueryMode) -> None:
        """Raise for a query this retriever does not take (before it is embedded)."""

    def _query_vector(self, query: Any, mode: QueryMode) -> list[float]:
        self._check_query(query, mode)
        if self._ours:
            if isinstance(query, str) and mode != "image":
                # the store applies the same query rule (and names a text query that an
                # image-only model cannot embed)
                return list(self.store.text_query_vector(query, mode))
            return list(self.store.image_query_vector(query))
        model = _image_model_of(self.store)
        assert model is not None  # checked at construction
        if not isinstance(query, str):
            return list(model.embed_images([query])[0])
        if resolve_query_mode(mode, query, supports_text=model.supports_text) == "text":
            return list(model.embed_query(query))
        if mode == "auto" and not looks_like_image_uri(query):
            raise EncoderError(
                f"{model.model_id} has no text tower, so it cannot embed the text query "
                f"{query[:60]!r}: search by image or use a CLIP-type model"
            )
        return list(model.embed_images([query.strip()])[0])

    def _relevance(self, score: float) -> float:
        if self._ours:
            return score  # already relevance in [0, 1]
        try:
            # the store's own distance -> relevance rule (what its
            # similarity_search_with_relevance_scores applies)
            fn = self.store._select_relevance_score_fn()
        except (NotImplementedError, ValueError):
            return relevance_from_cosine(score)  # e.g. InMemoryVectorStore: cosine
        return min(1.0, max(0.0, float(fn(score))))

    def _search(self, query: Any, kwargs: dict[str, Any]) -> list[Document]:
        opts = self._options(kwargs)
        return self._search_vector(self._query_vector(query, opts["query_mode"]), opts)

    def _plan(self, opts: dict[str, Any]) -> tuple[int, int, Any]:
        """``(k, depth, filter)`` of a search: images apart, and parents (several captions
        of one image collapse into it), drop or merge hits, so search deeper than k."""
        k, kinds = int(opts["k"]), opts["document_kinds"]
        filt = opts["filter"]
        if kinds == "text":  # exact, in the store: only text records carry kind "text"
            if filt is None:
                filt = {"kind": "text"}
            elif isinstance(filt, dict):
                filt = {"$and": [filt, {"kind": "text"}]}
            else:
                raise ValueError("document_kinds='text' needs a dict filter (or none)")
        deeper = kinds == "image" or bool(opts["return_parents"])
        return k, max(int(opts["fetch_k"]), k) if deeper else k, filt

    def _search_vector(self, vector: list[float], opts: dict[str, Any]) -> list[Document]:
        store = self.store
        k, n, filt = self._plan(opts)
        kinds = opts["document_kinds"]
        filters = {} if filt is None else {"filter": filt}
        if opts["search_type"] == "mmr":
            docs = store.max_marginal_relevance_search_by_vector(
                vector,
                k=n,
                fetch_k=max(int(opts["fetch_k"]), n),
                lambda_mult=float(opts["lambda_mult"]),
                **filters,
            )
            return self._shape([(d, None) for d in docs], kinds, opts, k)
        if self._ours:
            hits = store.similarity_search_with_score_by_vector(
                vector, n, filt, fetch_k=max(int(opts["fetch_k"]), n)
            )
        elif hasattr(store, "similarity_search_with_score_by_vector"):
            raw = store.similarity_search_with_score_by_vector(vector, k=n, **filters)
            hits = [(doc, self._relevance(score)) for doc, score in raw]
        else:  # a store that returns no scores
            docs = store.similarity_search_by_vector(vector, k=n, **filters)
            return self._shape([(d, None) for d in docs], kinds, opts, k)
        return self._threshold_and_shape(hits, opts)

    def _threshold_and_shape(
        self, hits: list[tuple[Document, float]], opts: dict[str, Any]
    ) -> list[Document]:
        threshold = opts["score_threshold"]
        scored: list[tuple[Document, float | None]] = [
            (d, s) for d, s in hits if threshold is None or s >= threshold
        ]
        return self._shape(scored, opts["document_kinds"], opts, int(opts["k"]))

    # -- batches ---------------------------------------------------------------------------
    def _batch_model(self) -> ImageEmbeddings | None:
        """The image model queries can be embedded with in one call (``None``: per query)."""
        if not self._ours:
            return _image_model_of(self.store)
        try:
            model = self.store.image_embeddings
        except EncoderError:  # a text-only Embeddings: the store embeds its own queries
            return None
        return model if isinstance(model, ImageEmbeddings) else None

    def _text_in_batch(self, query: str) -> bool:
        """Whether a text query may go to the model's text tower with the others: what the
        store's own query embedding does with it (an ``ImageDocumentEmbeddings`` applies its
        own query rule once more)."""
        if not self._ours:
            return True
        embeddings = getattr(self.store, "embeddings", None)
        if isinstance(embeddings, ImageEmbeddings):
            return True
        return (
            isinstance(embeddings, ImageDocumentEmbeddings)
            and resolve_query_mode(embeddings.query, query, supports_text=True) == "text"
        )

    def _query_vectors(self, queries: list[Any], mode: QueryMode) -> list[Any]:
        """One vector (or the exception embedding it raised) per query: the images in one
        ``embed_images`` call and the text queries in one text-tower call, by the same query
        rule as :meth:`_query_vector`; a query the rule leaves to the store, per query."""
        out: list[Any] = [None] * len(queries)
        model = self._batch_model()
        images: dict[int, Any] = {}
        texts: dict[int, str] = {}
        for i, query in enumerate(queries):
            try:
                self._check_query(query, mode)
            except (TypeError, ValueError) as exc:
                out[i] = exc
                continue
            if model is None:
                continue
            if not isinstance(query, str):
                images[i] = query
            elif mode == "image" or (
                mode == "auto"
                and model.supports_text
                and resolve_query_mode("auto", query, supports_text=True) == "image"
            ):
                images[i] = query.strip()
            elif model.supports_text and self._text_in_batch(query):
                texts[i] = query
        for picked, embed in (
            (images, model.embed_images if model else None),
            (texts, model.embed_documents if model else None),
        ):
            if not picked or embed is None:
                continue
            try:
                vectors = embed(list(picked.values()))
            except (EncoderError, ImageLoadError, OSError, ValueError):
                continue  # each query again on its own: its own error, named
            for i, vector in zip(picked, vectors, strict=True):
                out[i] = list(vector)
        for i, query in enumerate(queries):
            if out[i] is None:
                try:
                    out[i] = self._query_vector(query, mode)
                except Exception as exc:  # reported per query by the batch
                    out[i] = exc
        return out

    def _search_many(self, queries: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        """Documents (or the exception) per query: the queries embedded together and, on a
        store with ``similarity_search_with_score_by_vectors``, searched in one call."""
        opts = self._options(kwargs)
        vectors = self._query_vectors(queries, opts["query_mode"])
        ready = [i for i, v in enumerate(vectors) if not isinstance(v, BaseException)]
        out: list[Any] = list(vectors)
        batched = getattr(self.store, "similarity_search_with_score_by_vectors", None)
        if ready and self._ours and batched is not None and opts["search_type"] != "mmr":
            _, n, filt = self._plan(opts)
            try:
                found = batched(
                    [vectors[i] for i in ready], n, filt, fetch_k=max(int(opts["fetch_k"]), n)
                )
            except Exception:  # per query below: each gets its own error
                found = None
            if found is not None:
                for i, hits in zip(ready, found, strict=True):
                    out[i] = self._threshold_and_shape(hits, opts)
                return out
        for i in ready:
            try:
                out[i] = self._search_vector(vectors[i], opts)
            except Exception as exc:  # reported per query by the batch
                out[i] = exc
        return out

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Search several queries at once: one embedding call for the images (and one for
        the texts) and one batched store search, instead of a search per query.

        Each query is still its own retriever run for callbacks and tracing (its config's
        callbacks, tags, metadata and run name), as in ``invoke``; an error is that query's
        (raised, or returned in its place with ``return_exceptions=True``).
        """
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        runs = []
        for query, conf in zip(inputs, configs, strict=True):
            manager = CallbackManager.configure(**self._run_setup(conf, kwargs))
            runs.append(
                manager.on_retriever_start(
                    None, query, name=conf.get("run_name") or self.get_name()
                )
            )
        try:
            results = self._search_many(list(inputs), kwargs)
        except Exception as exc:  # bad options: every query's error
            results = [exc] * len(inputs)
        return self._finish(runs, results, return_exceptions)

    def _run_setup(self, conf: RunnableConfig, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The callback manager settings of one query's run (what ``invoke`` configures)."""
        return {
            "inheritable_callbacks": conf.get("callbacks"),
            "local_callbacks": None,
            "verbose": kwargs.get("verbose", False),
            "inheritable_tags": conf.get("tags"),
            "local_tags": self.tags,
            "inheritable_metadata": {**(conf.get("metadata") or {}), **self._get_ls_params()},
            "local_metadata": self.metadata,
        }

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async :meth:`batch` (the batched search runs in an executor thread)."""
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        runs = []
        for query, conf in zip(inputs, configs, strict=True):
            manager = AsyncCallbackManager.configure(**self._run_setup(conf, kwargs))
            runs.append(
                await manager.on_retriever_start(
                    None, query, name=conf.get("run_name") or self.get_name()
                )
            )
        try:
            results = await run_in_executor(None, self._search_many, list(inputs), kwargs)
        except Exception as exc:  # bad options: every query's error
            results = [exc] * len(inputs)
        for run, result in zip(runs, results, strict=True):
            if isinstance(result, BaseException):
                await run.on_retriever_error(result)
            else:
                await run.on_retriever_end(result)
        return self._outcome(results, return_exceptions)

    def _finish(
        self,
        runs: list[CallbackManagerForRetrieverRun],
        results: list[Any],
        return_exceptions: bool,
    ) -> list[Any]:
        for run, result in zip(runs, results, strict=True):
            if isinstance(result, BaseException):
                run.on_retriever_error(result)
            else:
                run.on_retriever_end(result)
        return self._outcome(results, return_exceptions)

    @staticmethod
    def _outcome(results: list[Any], return_exceptions: bool) -> list[Any]:
        if not return_exceptions:
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return results

    def _shape(
        self,
        hits: list[tuple[Document, float | None]],
        kinds: DocumentKinds,
        opts: dict[str, Any],
        k: int,
    ) -> list[Document]:
        """Keep the wanted kinds, lift text hits to their parent images, score, cut to k."""
        if kinds == "image":
            hits = [(d, s) for d, s in hits if d.metadata.get("kind") != "text"]
        parents: dict[str, Document] = {}
        if opts["return_parents"]:
            wanted = {
                str(d.metadata["parent_id"])
                for d, _ in hits
                if d.metadata.get("kind") == "text" and d.metadata.get("parent_id")
            }
            if wanted:
                parents = {str(p.id): p for p in self.store.get_by_ids(sorted(wanted))}
        out: list[Document] = []
        seen: set[str] = set()
        for doc, score in hits:
            matched: str | None = None
            parent = parents.get(str(doc.metadata.get("parent_id")))
            if doc.metadata.get("kind") == "text" and parent is not None:
                matched, doc = doc.page_content, parent
            key = str(doc.id) if doc.id is not None else f"#{len(out)}"
            if key in seen:
                continue
            seen.add(key)
            metadata = dict(doc.metadata)
            if score is not None:
                metadata["score"] = score
            if matched is not None:
                metadata["matched_text"] = matched
            out.append(Document(id=doc.id, page_content=doc.page_content, metadata=metadata))
            if len(out) == k:
                break
        return out

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self._search(query, kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await run_in_executor(None, self._search, query, kwargs)


class TextToImageRetriever(_ImageStoreRetriever):
    """Find images for a text query (CLIP-type models, e.g. ``open_clip:ViT-B-32``).

    Key init args:
        store: ImageVectorStore
            A :class:`~langchain_image_embeddings.vectorstores.FAISSImageStore` or
            :class:`~langchain_image_embeddings.vectorstores.ChromaImageStore`.
        k: int
            Documents to return (default 4); ``invoke(query, k=...)`` overrides it.
        score_threshold: float | None
            Drop hits whose relevance (``[0, 1]``) is below this.
        filter: dict | None
            Metadata filter, e.g. ``{"format": "PNG"}``.
        search_type: "similarity" | "mmr"
            MMR trades relevance for diversity (``fetch_k``, ``lambda_mult``).

    Instantiate and invoke:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.retrievers import TextToImageRetriever
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore.open("index", ImageEmbeddings("open_clip:ViT-B-32"))
            retriever = TextToImageRetriever(store=store, k=4)
            docs = retriever.invoke("a cat on a sofa", k=2)
            docs[0].page_content, docs[0].metadata["score"]

    Async:
        .. code-block:: python

            docs = await retriever.ainvoke("a rocket")
    """

    def _check_query(self, query: Any, mode: QueryMode) -> None:
        if not isinstance(query, str) and mode == "text":
            raise TypeError(
                "TextToImageRetriever with query_mode='text' expects a text query; use "
                "ImageToImageRetriever (or query_mode='auto') for images"
            )


class ImageToImageRetriever(_ImageStoreRetriever):
    """Find images similar to a query image: a path, URL, ``data:`` URI, bytes or PIL image.

    Same options as :class:`TextToImageRetriever` (``k``, ``score_threshold``, ``filter``,
    ``search_type="mmr"``). With a string query, ``invoke`` reads it as a path or URI.

    Instantiate and invoke:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings
            from langchain_image_embeddings.retrievers import ImageToImageRetriever
            from langchain_image_embeddings.vectorstores import FAISSImageStore

            store = FAISSImageStore.open("index", ImageEmbeddings("timm:efficientnet_lite0"))
            retriever = ImageToImageRetriever(store=store, k=3, score_threshold=0.8)
            docs = retriever.invoke("photos/copies/chelsea-crop.jpg")
            docs = retriever.search_image(pil_image)          # any image input
    """

    query_mode: QueryMode = "image"

    def search_image(
        self, image: ImageInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        """Like ``invoke`` for inputs that are not strings (bytes, PIL images, arrays).

        It runs through ``invoke``, so callbacks, tags and tracing see the search
        (``config``), and takes the same per-call options.
        """
        return self.invoke(image, config, **kwargs)  # type: ignore[arg-type]  # any image input

    async def asearch_image(
        self, image: ImageInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`search_image`."""
        return await self.ainvoke(image, config, **kwargs)  # type: ignore[arg-type]
