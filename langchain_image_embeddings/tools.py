"""An image-search tool for agents (``langchain.agents.create_agent``, LangGraph).

The tool runs a retriever and answers with **content blocks**: a text block listing the hits
(file names, scores, matched captions) and, by default, the images themselves as image
blocks, so a vision model sees what it found (a ``ToolMessage`` may carry images, as a
``HumanMessage`` does). The retrieved documents travel beside the content as the tool
message's ``artifact``, for the application, never for the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from langchain_image_embeddings.images import ImageLoadOptions
from langchain_image_embeddings.messages import (
    BlockStyle,
    RemoteImages,
    build_image_rag_content,
    default_caption,
)

__all__ = ["ImageSearchInput", "image_search_tool"]

_DESCRIPTION = (
    "Search the image collection. Input: a description of what the images should show "
    "(or the path of an image to find similar ones). Returns the matching images."
)


class ImageSearchInput(BaseModel):
    """What the model passes to the image-search tool.

    Example:
        >>> ImageSearchInput(query="a red rocket", k=2).k
        2
    """

    query: str = Field(description="What the images should show, in words (or an image path).")
    k: int | None = Field(default=None, ge=1, le=20, description="How many images (optional).")


def _summary(documents: Sequence[Document], skipped: Sequence[str]) -> str:
    if not documents:
        return "No matching images."
    lines = [f"Found {len(documents)} result(s):"]
    for number, doc in enumerate(documents, start=1):
        line = default_caption(doc, number)
        if "score" in doc.metadata:
            line += f" score={float(doc.metadata['score']):.3f}"
        if "matched_text" in doc.metadata:
            line += f" matched: {doc.metadata['matched_text']!r}"
        lines.append(line)
    if skipped:
        lines.append(f"Unavailable (not shown): {', '.join(skipped)}")
    return "\n".join(lines)


def image_search_tool(
    retriever: BaseRetriever,
    *,
    name: str = "image_search",
    description: str = _DESCRIPTION,
    include_images: bool = True,
    max_side: int = 384,
    style: BlockStyle = "langchain",
    remote_images: RemoteImages = "inline",
    load_options: ImageLoadOptions | None = None,
) -> BaseTool:
    """A tool that searches images with ``retriever`` and returns image content blocks.

    Args:
        retriever: Any retriever of image documents (``TextToImageRetriever``, a store's
            ``as_retriever()``, an ``EnsembleRetriever`` ...); ``k`` from the model is passed
            as a per-call option when given.
        name: The tool's name, as the model sees it.
        description: What the model reads to decide when to call it.
        include_images: Send the images as image blocks (default) or only the text list
            (for a model without vision).
        max_side, style, remote_images, load_options: As in
            :func:`~langchain_image_embeddings.messages.build_image_rag_content`.

    Returns:
        A ``StructuredTool`` (``response_format="content_and_artifact"``): the content is a
        list of blocks, the artifact the retrieved documents.

    Example:
        .. code-block:: python

            from langchain.agents import create_agent
            from langchain_image_embeddings.tools import image_search_tool

            tool = image_search_tool(TextToImageRetriever(store=store, k=3))
            agent = create_agent(vision_model, tools=[tool])
            agent.invoke({"messages": [{"role": "user", "content": "Find a rocket photo"}]})
    """

    def content(docs: list[Document]) -> tuple[list[dict[str, Any]], list[Document]]:
        if not include_images:
            return [{"type": "text", "text": _summary(docs, [])}], docs
        built = build_image_rag_content(
            docs,
            max_side=max_side,
            style=style,
            remote_images=remote_images,
            load_options=load_options,
        )
        names = [s.name for s in built.skipped]
        return [{"type": "text", "text": _summary(docs, names)}, *built.blocks], docs

    def search(query: str, k: int | None = None) -> tuple[list[dict[str, Any]], list[Document]]:
        options = {} if k is None else {"k": k}
        return content(retriever.invoke(query, None, **options))

    async def asearch(
        query: str, k: int | None = None
    ) -> tuple[list[dict[str, Any]], list[Document]]:
        options = {} if k is None else {"k": k}
        return content(await retriever.ainvoke(query, None, **options))

    return StructuredTool.from_function(
        func=search,
        coroutine=asearch,
        name=name,
        description=description,
        args_schema=ImageSearchInput,
        response_format="content_and_artifact",
    )
