"""Retrievers over image stores: text-to-image and image-to-image.

Both are LangChain :class:`~langchain_core.retrievers.BaseRetriever` objects, so they work
with ``invoke`` / ``ainvoke`` / ``batch`` and inside LCEL chains. ``k`` is set in the
constructor and can be overridden per call (``retriever.invoke(query, k=3)``). Each
returned document carries its relevance score (``[0, 1]``) in ``metadata["score"]``
(similarity search; MMR results carry none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from langchain_image_embeddings.images._load import ImageInput
    from langchain_image_embeddings.vectorstores.base import ImageVectorStore

__all__ = ["ImageToImageRetriever", "TextToImageRetriever"]

SearchType = Literal["similarity", "mmr"]
_OVERRIDABLE = ("k", "score_threshold", "filter", "search_type", "fetch_k", "lambda_mult")
# What the retrievers call on their store (every ImageVectorStore has it).
_STORE_API = (
    "text_query_vector",
    "image_query_vector",
    "similarity_search_with_score_by_vector",
    "max_marginal_relevance_search_by_vector",
)


class _ImageStoreRetriever(BaseRetriever):
    store: Any = Field(description="An ImageVectorStore (FAISSImageStore, ChromaImageStore).")
    k: int = Field(default=4, gt=0)
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    filter: dict[str, Any] | Callable[[dict[str, Any]], bool] | None = None
    search_type: SearchType = "similarity"
    fetch_k: int = Field(default=20, gt=0)
    lambda_mult: float = Field(default=0.5, ge=0.0, le=1.0)

    # An unknown constructor option (``search_kwargs=`` as in ``as_retriever``, a typo) is
    # an error, as it is per call, instead of being silently dropped by pydantic.
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @field_validator("store")
    @classmethod
    def _check_store(cls, store: Any) -> Any:
        # Checked here, not at the first invoke, where a stock LangChain store (which has
        # no image query) would fail with a raw AttributeError deep in the search.
        if not all(hasattr(store, name) for name in _STORE_API):
            raise ValueError(
                f"store must be an image store of this package (FAISSImageStore, "
                f"ChromaImageStore, MilvusImageStore), not {type(store).__name__}: "
                "for another LangChain vector store use store.as_retriever()"
            )
        return store

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

    def _query_vector(self, query: Any) -> list[float]:
        raise NotImplementedError

    def _search(self, query: Any, kwargs: dict[str, Any]) -> list[Document]:
        opts = self._options(kwargs)
        store: ImageVectorStore = self.store
        vector = self._query_vector(query)
        if opts["search_type"] == "mmr":
            return store.max_marginal_relevance_search_by_vector(
                vector,
                int(opts["k"]),
                fetch_k=int(opts["fetch_k"]),
                lambda_mult=float(opts["lambda_mult"]),
                filter=opts["filter"],
            )
        hits = store.similarity_search_with_score_by_vector(
            vector,
            int(opts["k"]),
            opts["filter"],
            fetch_k=int(opts["fetch_k"]),
            score_threshold=opts["score_threshold"],
        )
        return [
            Document(
                id=doc.id, page_content=doc.page_content, metadata={**doc.metadata, "score": score}
            )
            for doc, score in hits
        ]

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

    def _query_vector(self, query: Any) -> list[float]:
        if not isinstance(query, str):
            raise TypeError(
                "TextToImageRetriever expects a text query; use ImageToImageRetriever for images"
            )
        return list(self.store.text_query_vector(query))


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

    def _query_vector(self, query: Any) -> list[float]:
        return list(self.store.image_query_vector(query))

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
