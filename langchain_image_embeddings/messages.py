"""Retrieved image documents as multimodal chat-message content for a vision LLM.

Images are read with the package's safe loader, shrunk so the longer side is at most
``max_side`` pixels, re-encoded (JPEG by default) and base64-encoded into content
blocks. The store keeps only URIs; base64 is produced here, for the prompt, on demand.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from PIL import Image

from langchain_image_embeddings.images._load import load_image
from langchain_image_embeddings.images._options import ImageLoadOptions

__all__ = ["image_documents_to_content_blocks", "image_rag_message", "image_to_base64"]

BlockStyle = Literal["langchain", "openai"]

#: Formats a vision LLM accepts as an inline image, by the names callers use for them.
_FORMATS = {"JPEG": "JPEG", "JPG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "GIF": "GIF"}
_STYLES = ("langchain", "openai")


def image_to_base64(
    source: Any,
    *,
    max_side: int = 512,
    image_format: str = "JPEG",
    quality: int = 85,
    load_options: ImageLoadOptions | None = None,
) -> tuple[str, str]:
    """Load, shrink to ``max_side`` and encode an image; returns ``(base64, mime_type)``."""
    if max_side <= 0:
        raise ValueError("max_side must be positive")
    fmt = _FORMATS.get(image_format.upper())
    if fmt is None:  # Pillow's own KeyError('JPG') named neither the argument nor the choices
        raise ValueError(
            f"image_format {image_format!r}: expected one of JPEG (or JPG), PNG, WEBP, GIF"
        )
    image = load_image(source, load_options)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), f"image/{fmt.lower()}"


def image_documents_to_content_blocks(
    documents: Sequence[Document],
    *,
    max_side: int = 512,
    image_format: str = "JPEG",
    style: BlockStyle = "langchain",
    captions: bool = True,
    load_options: ImageLoadOptions | None = None,
) -> list[dict[str, Any]]:
    """Content blocks (one optional caption + one image per document) for a chat message.

    Args:
        documents: Image documents (``page_content`` = the image URI).
        max_side: Longest side of each image sent, in pixels.
        image_format: ``"JPEG"`` (default, also ``"JPG"``), ``"PNG"``, ``"WEBP"`` or ``"GIF"``.
        style: ``"langchain"`` standard blocks (``{"type": "image", "base64": ...}``) or
            ``"openai"`` blocks (``{"type": "image_url", "image_url": {"url": "data:..."}}``).
        captions: Put a text block naming each image (``[image 1] source``) before it.

    Example:
        .. code-block:: python

            from langchain_core.messages import HumanMessage
            from langchain_image_embeddings.messages import image_documents_to_content_blocks

            docs = retriever.invoke("a red rocket")
            blocks = image_documents_to_content_blocks(docs, max_side=384)
            message = HumanMessage(content=[{"type": "text", "text": "Describe them."}, *blocks])
    """
    if style not in _STYLES:
        raise ValueError(f"style {style!r}: expected 'langchain' or 'openai'")
    blocks: list[dict[str, Any]] = []
    for number, doc in enumerate(documents, start=1):
        data, mime = image_to_base64(
            doc.page_content,
            max_side=max_side,
            image_format=image_format,
            load_options=load_options,
        )
        if captions:
            name = doc.metadata.get("source", doc.page_content)
            if isinstance(name, str) and name.startswith("data:"):
                name = "inline image"
            blocks.append({"type": "text", "text": f"[image {number}] {name}"})
        if style == "openai":
            blocks.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
        else:
            blocks.append({"type": "image", "base64": data, "mime_type": mime})
    return blocks


def image_rag_message(question: str, documents: Sequence[Document], **kwargs: Any) -> HumanMessage:
    """One ``HumanMessage``: the question, then the retrieved images as content blocks.

    Example:
        .. code-block:: python

            from langchain_core.runnables import RunnableLambda, RunnablePassthrough
            from langchain_image_embeddings.messages import image_rag_message

            chain = (
                {"docs": retriever, "question": RunnablePassthrough()}
                | RunnableLambda(lambda x: [image_rag_message(x["question"], x["docs"])])
                | vision_llm
            )
            chain.invoke("Which of these photos shows a rocket?")
    """
    content: list[str | dict[str, Any]] = [{"type": "text", "text": question}]
    content.extend(image_documents_to_content_blocks(documents, **kwargs))
    return HumanMessage(content=content)
