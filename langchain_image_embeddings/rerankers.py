"""Re-rank retrieved image documents with a late-interaction model (MaxSim).

A first stage that is cheap over many images (a CLIP store: one vector per image) finds
candidates; :class:`MaxSimReranker` re-orders them by the MaxSim of the query's token
vectors against each page's patch vectors (ColPali, ColQwen2), which sees the text and the
layout on a page that one CLIP vector loses. It is a LangChain ``BaseDocumentCompressor``,
so it plugs into ``ContextualCompressionRetriever`` (``langchain_classic.retrievers``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import ImageLoadOptions, load_image, read_image_source
from langchain_image_embeddings.vectorstores.multivector import maxsim, relevance_from_maxsim

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MaxSimReranker"]


class MaxSimReranker(BaseDocumentCompressor):
    """A document compressor that re-ranks image documents by late-interaction MaxSim.

    Each document's ``page_content`` is an image URI (what this package's stores and
    loaders return). Its page is embedded with ``encoder.embed_pages`` (cached by the
    image bytes' SHA-256, so a page seen again is not embedded again) and scored against
    ``encoder.embed_query(query)``. The ``top_n`` best are returned, best first, each with
    ``metadata["relevance_score"]`` in ``[0, 1]`` (``(1 + MaxSim / query tokens) / 2``).
    A document whose image cannot be read is ranked after the scored ones with
    ``metadata["rerank_error"]`` (its code), never dropped silently (``top_n`` still applies).

    Key init args:
        encoder: A ``MultiVectorEmbedder`` (``LateInteractionEncoder``).
        top_n: Documents returned.
        cache_size: Pages whose vectors are kept between calls.

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from langchain_image_embeddings.encoders.late import LateInteractionEncoder
            from langchain_image_embeddings.rerankers import MaxSimReranker

            retriever = ContextualCompressionRetriever(
                base_compressor=MaxSimReranker(
                    encoder=LateInteractionEncoder.from_pretrained("models/colpali"), top_n=3
                ),
                base_retriever=clip_store.as_retriever(search_kwargs={"k": 20}),
            )
            retriever.invoke("which quarter had the highest revenue?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    encoder: Any
    top_n: int = Field(default=4, ge=1)
    cache_size: int = Field(default=1024, ge=0)
    load_options: ImageLoadOptions | None = None
    _cache: OrderedDict[str, np.ndarray] = PrivateAttr(default_factory=OrderedDict)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The ``top_n`` documents best for ``query`` by MaxSim, best first."""
        if not documents:
            return []
        tokens = self.encoder.embed_query(query)
        pages, failed = self._page_vectors(documents)
        scored = [
            (relevance_from_maxsim(maxsim(tokens, vectors), len(tokens)), n)
            for n, vectors in pages.items()
        ]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        out = [
            Document(
                id=documents[n].id,
                page_content=documents[n].page_content,
                metadata={**documents[n].metadata, "relevance_score": score},
            )
            for score, n in scored
        ]
        out += [
            Document(
                id=documents[n].id,
                page_content=documents[n].page_content,
                metadata={**documents[n].metadata, "rerank_error": code},
            )
            for n, code in failed.items()
        ]
        return out[: self.top_n]

    def _page_vectors(
        self, documents: Sequence[Document]
    ) -> tuple[dict[int, np.ndarray], dict[int, str]]:
        """Each readable document's page vectors (cached by SHA-256), and the failures."""
        pages: dict[int, np.ndarray] = {}
        failed: dict[int, str] = {}
        todo: dict[str, list[int]] = {}
        pictures = {}
        for n, doc in enumerate(documents):
            try:
                source = read_image_source(doc.page_content, self.load_options)
                if source.sha256 in self._cache:
                    self._cache.move_to_end(source.sha256)
                    pages[n] = self._cache[source.sha256]
                    continue
                if source.sha256 not in todo:
                    pictures[source.sha256] = load_image(source, self.load_options, index=n)
                todo.setdefault(source.sha256, []).append(n)
            except ImageLoadError as exc:
                failed[n] = exc.code
        if todo:
            keys = list(todo)
            for key, vectors in zip(
                keys, self.encoder.embed_pages([pictures[k] for k in keys]), strict=True
            ):
                for n in todo[key]:
                    pages[n] = vectors
                if self.cache_size:
                    self._cache[key] = vectors
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return pages, failed
