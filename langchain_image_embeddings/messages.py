"""Retrieved documents as multimodal chat-message content for a vision LLM.

Real retrieval results are mixed: an ``EnsembleRetriever`` returns BM25 text documents beside
image documents, a file may have been deleted since it was indexed, and langchain-chroma's
``add_images`` stores the image itself, base64-encoded, in ``page_content``. The helpers here
take all of them:

* an **image document** (``page_content`` is a path, ``file://`` / ``http(s)://`` URL,
  ``data:`` URI, a PDF page address such as ``report.pdf#page=3``, or base64 image bytes) is
  read with the package's one image reader, shrunk so its longer side is at most ``max_side``
  pixels, re-encoded (JPEG by default) and base64-encoded into an image block, after a caption;
* a **text document** (prose, or ``metadata["kind"] == "text"``) passes through as a text block;
* a document whose image cannot be read is skipped (default, ``on_error="skip"``) and named in
  the result, replaced by a text placeholder (``"placeholder"``) or raised (``"raise"``).

Captions never carry an absolute local path: the default names the file and the metadata
fields the caller lists (``caption_metadata=("page", "author")``). ``http(s)`` images can be
sent as ``url`` blocks for the provider to fetch (``remote_images="url"``) instead of being
downloaded and inlined. The store keeps only URIs; base64 is produced here, on demand.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import run_in_executor
from PIL import Image
from pydantic import ConfigDict, Field

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import IMAGE_SUFFIXES, ImageLoadOptions, load_image

__all__ = [
    "BlockStyle",
    "CaptionFn",
    "ImageRAGContent",
    "ImageRAGPrompt",
    "MessageOnError",
    "RemoteImages",
    "SkippedDocument",
    "build_image_rag_content",
    "default_caption",
    "document_kind",
    "image_documents_to_content_blocks",
    "image_rag_message",
    "image_to_base64",
]

BlockStyle = Literal["langchain", "openai"]
#: What to do with a document whose image cannot be read.
MessageOnError = Literal["skip", "raise", "placeholder"]
#: ``http(s)`` images: downloaded and inlined as base64 (``"inline"``) or sent as URLs (``"url"``).
RemoteImages = Literal["inline", "url"]
#: ``caption(document, number) -> text`` put before image ``number`` (1-based); ``None``: none.
CaptionFn = Callable[[Document, int], "str | None"]

#: Formats a vision LLM accepts as an inline image, by the names callers use for them.
_FORMATS = {"JPEG": "JPEG", "JPG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "GIF": "GIF"}
_STYLES = ("langchain", "openai")
_ON_ERROR = ("skip", "raise", "placeholder")
_REMOTE = ("inline", "url")
#: Leading bytes of the image formats a bare base64 ``page_content`` may hold.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]+={0,2}")
#: A page of a document file (``report.pdf#page=3``), read by the same image reader.
_PAGE = re.compile(r"#page=[1-9]\d*(?:&figure=[1-9]\d*)?$")  # as images.parse_address
_MAX_URI = 4096


def image_to_base64(
    source: Any,
    *,
    max_side: int = 512,
    image_format: str = "JPEG",
    quality: int = 85,
    load_options: ImageLoadOptions | None = None,
) -> tuple[str, str]:
    """Load, shrink to ``max_side`` and encode an image; returns ``(base64, mime_type)``.

    ``source`` is anything :func:`~langchain_image_embeddings.images.load_image` reads.

    Raises:
        ImageLoadError: The image cannot be read.
        ValueError: ``max_side`` is not positive or ``image_format`` is unknown.
    """
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


# -- what a document is --------------------------------------------------------------------
def _base64_image(content: str) -> bytes | None:
    """The image bytes of a bare base64 ``page_content`` (langchain-chroma's), else ``None``."""
    if len(content) < 16 or " " in content or not _BASE64.fullmatch(content):
        return None
    try:
        head = base64.b64decode(content[:64], validate=False)
    except (binascii.Error, ValueError):
        return None
    if not head.startswith(_MAGIC):
        return None
    try:
        return base64.b64decode(content)
    except (binascii.Error, ValueError):
        return None


def _is_image_address(content: str) -> bool:
    """A one-line URI or path naming an image (whether or not the file still exists)."""
    if content[:5].lower() == "data:":  # any length: the image is inside
        return True
    if not content or len(content) > _MAX_URI or "\n" in content:
        return False
    lower = content.strip().lower()
    if lower.startswith(("http://", "https://", "file://")):
        path = urllib.parse.urlsplit(lower).path
        return path.endswith(IMAGE_SUFFIXES) or path.endswith(".pdf")
    if _PAGE.search(lower):
        return True
    return lower.endswith(IMAGE_SUFFIXES)


def document_kind(document: Document) -> Literal["image", "text"]:
    """Whether a retrieved document is an image (to load) or text (to pass through).

    ``metadata["kind"]`` decides when it is ``"image"`` or ``"text"`` (captions stored beside
    images carry it). Otherwise a document is an image when its ``page_content`` is an
    image address (path or URL ending in an image suffix, ``data:`` URI, a PDF page such as
    ``report.pdf#page=3``) or base64-encoded image bytes (langchain-chroma's ``add_images``).
    A deleted file is still an image (its loading then fails and is reported).

    Example:
        >>> from langchain_core.documents import Document
        >>> document_kind(Document(page_content="photos/cat.jpg"))
        'image'
        >>> document_kind(Document(page_content="A tabby cat asleep on a red sofa."))
        'text'
    """
    kind = document.metadata.get("kind")
    if kind in ("image", "text"):
        return kind  # type: ignore[no-any-return]
    content = document.page_content
    if _is_image_address(content) or _base64_image(content) is not None:
        return "image"
    return "text"


def _file_name(address: str) -> str:
    """A display name for an address: the file name, never a folder path."""
    if address.lower().startswith("data:") or _base64_image(address) is not None:
        return "inline image"
    page = _PAGE.search(address)
    base = address[: page.start()] if page else address
    if "://" in base:
        base = urllib.parse.unquote(urllib.parse.urlsplit(base).path)
    name = base.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or "image"
    return name + (page.group(0) if page else "")


def _caption_field(value: Any) -> str:
    text = str(value)
    if os.path.isabs(text) or "://" in text:  # a path-valued field: its file name only
        return _file_name(text)
    return text


def default_caption(document: Document, number: int, *, metadata_keys: Sequence[str] = ()) -> str:
    """``[image 1] chelsea.jpg (year: 2024)``: the file name and the chosen metadata fields.

    A PDF page or figure (``document`` and ``page`` in its metadata) reads
    ``[image 1] report.pdf, page 3`` (``, figure 2``).

    The name comes from ``metadata["source"]`` (else ``page_content``) reduced to its file
    name, so no local folder reaches a hosted LLM; inline images are ``inline image``.
    Path-valued metadata fields are reduced the same way.

    Example:
        >>> from langchain_core.documents import Document
        >>> doc = Document(page_content="/home/me/photos/cat.jpg", metadata={"year": 2024})
        >>> default_caption(doc, 1, metadata_keys=["year"])
        '[image 1] cat.jpg (year: 2024)'
    """
    source = document.metadata.get("source")
    address = source if isinstance(source, str) and source else document.page_content
    text = f"[image {number}] {_file_name(address)}"
    pdf = document.metadata.get("document")
    page = document.metadata.get("page")
    if isinstance(pdf, str) and isinstance(page, int):  # a PDF page or figure: say it in words
        text = f"[image {number}] {_file_name(pdf)}, page {page}"
        figure = document.metadata.get("figure")
        if isinstance(figure, int):
            text += f", figure {figure}"
    fields = [
        f"{key}: {_caption_field(document.metadata[key])}"
        for key in metadata_keys
        if key in document.metadata
    ]
    return f"{text} ({', '.join(fields)})" if fields else text


# -- the content --------------------------------------------------------------------------
@dataclass(frozen=True)
class SkippedDocument:
    """A retrieved document left out of (or replaced in) the message, and why.

    Attributes:
        index: Its position in the documents given.
        name: Its display name (the file name; never an absolute path).
        reason: What went wrong, for a person.
        code: The :class:`~langchain_image_embeddings.errors.ImageLoadError` code
            (``"not_found"``, ``"decode_error"``, ...).

    Example:
        >>> SkippedDocument(2, "cat.jpg", "no such file", "not_found").as_dict()["name"]
        'cat.jpg'
    """

    index: int
    name: str
    reason: str
    code: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what message metadata carries)."""
        return {"index": self.index, "name": self.name, "reason": self.reason, "code": self.code}


@dataclass
class ImageRAGContent:
    """Content blocks for a chat message, and the documents that did not make it.

    Attributes:
        blocks: Text and image content blocks, in document order.
        skipped: The documents whose image could not be read (skipped or replaced).
        images: How many images the blocks carry.

    Example:
        >>> from langchain_core.documents import Document
        >>> content = build_image_rag_content([Document(page_content="Just text.")])
        >>> content.blocks, content.images, content.skipped
        ([{'type': 'text', 'text': 'Just text.'}], 0, [])
    """

    blocks: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[SkippedDocument] = field(default_factory=list)
    images: int = 0


def _check_choices(style: str, on_error: str, remote_images: str) -> None:
    if style not in _STYLES:
        raise ValueError(f"style {style!r}: expected 'langchain' or 'openai'")
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error {on_error!r}: expected 'skip', 'raise' or 'placeholder'")
    if remote_images not in _REMOTE:
        raise ValueError(f"remote_images {remote_images!r}: expected 'inline' or 'url'")


def _image_block(data: str, mime: str, style: BlockStyle) -> dict[str, Any]:
    if style == "openai":
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    return {"type": "image", "base64": data, "mime_type": mime}


def _url_block(url: str, style: BlockStyle) -> dict[str, Any]:
    if style == "openai":
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "image", "url": url}


def build_image_rag_content(
    documents: Sequence[Document],
    *,
    max_side: int = 512,
    image_format: str = "JPEG",
    style: BlockStyle = "langchain",
    caption: CaptionFn | None = default_caption,
    caption_metadata: Sequence[str] = (),
    on_error: MessageOnError = "skip",
    on_skip: Callable[[SkippedDocument], None] | None = None,
    remote_images: RemoteImages = "inline",
    load_options: ImageLoadOptions | None = None,
) -> ImageRAGContent:
    """Content blocks for retrieved documents (images and text), reporting what was skipped.

    Args:
        documents: Retrieved documents: image documents, text documents, or both.
        max_side: Longest side of each image sent, in pixels.
        image_format: ``"JPEG"`` (default, also ``"JPG"``), ``"PNG"``, ``"WEBP"`` or ``"GIF"``.
        style: ``"langchain"`` standard blocks (``{"type": "image", "base64": ...}``) or
            ``"openai"`` blocks (``{"type": "image_url", "image_url": {"url": ...}}``).
        caption: ``caption(document, number)`` gives the text block put before image
            ``number``; ``None`` puts none. Default :func:`default_caption`.
        caption_metadata: Metadata fields the default caption adds (``("page", "year")``).
        on_error: A document whose image cannot be read is left out (``"skip"``, default),
            replaced by a text block naming it (``"placeholder"``), or its
            :class:`~langchain_image_embeddings.errors.ImageLoadError` is raised, naming the
            document's index (``"raise"``). Skipped and replaced ones are in ``skipped``.
        on_skip: Called with each :class:`SkippedDocument` as it is skipped or replaced.
        remote_images: ``"inline"`` downloads ``http(s)`` images (needs
            ``load_options.allow_remote``) and sends base64; ``"url"`` sends the URL for the
            provider to fetch, downloading nothing.
        load_options: Limits and policies of the image reader.

    Raises:
        ImageLoadError: ``on_error="raise"`` and an image cannot be read.
        ValueError: An unknown ``style``, ``on_error``, ``remote_images`` or ``image_format``.

    Example:
        .. code-block:: python

            from langchain_core.documents import Document
            from langchain_image_embeddings.messages import build_image_rag_content

            content = build_image_rag_content(
                [Document(page_content="photos/chelsea.jpg"),
                 Document(page_content="Chelsea is a tabby cat."),
                 Document(page_content="photos/deleted.jpg")],
                max_side=64,
            )
            [b["type"] for b in content.blocks]   # ['text', 'image', 'text']
            content.skipped[0].name               # 'deleted.jpg'
    """
    _check_choices(style, on_error, remote_images)
    if caption is default_caption and caption_metadata:
        keys = tuple(caption_metadata)

        def caption_fn(doc: Document, number: int) -> str | None:
            return default_caption(doc, number, metadata_keys=keys)

    else:
        caption_fn = caption  # type: ignore[assignment]
    result = ImageRAGContent()
    for index, doc in enumerate(documents):
        if document_kind(doc) == "text":
            result.blocks.append({"type": "text", "text": doc.page_content})
            continue
        number = result.images + 1
        address = doc.page_content.strip()
        try:
            if remote_images == "url" and address.lower().startswith(("http://", "https://")):
                block = _url_block(address, style)
            else:
                raw = _base64_image(address)
                data, mime = image_to_base64(
                    raw if raw is not None else address,
                    max_side=max_side,
                    image_format=image_format,
                    load_options=load_options,
                )
                block = _image_block(data, mime, style)
        except ImageLoadError as err:
            if on_error == "raise":
                raise err.with_index(index) from err
            source = doc.metadata.get("source")
            skipped = SkippedDocument(
                index=index,
                name=_file_name(source if isinstance(source, str) and source else address),
                reason=err.reason,
                code=err.code,
            )
            result.skipped.append(skipped)
            if on_skip is not None:
                on_skip(skipped)
            if on_error == "placeholder":
                note = f"[image unavailable] {skipped.name}: {skipped.reason}"
                result.blocks.append({"type": "text", "text": note})
            continue
        result.images = number
        text = caption_fn(doc, number) if caption_fn is not None else None
        if text:
            result.blocks.append({"type": "text", "text": text})
        result.blocks.append(block)
    return result


def image_documents_to_content_blocks(
    documents: Sequence[Document],
    *,
    max_side: int = 512,
    image_format: str = "JPEG",
    style: BlockStyle = "langchain",
    caption: CaptionFn | None = default_caption,
    caption_metadata: Sequence[str] = (),
    on_error: MessageOnError = "skip",
    on_skip: Callable[[SkippedDocument], None] | None = None,
    remote_images: RemoteImages = "inline",
    load_options: ImageLoadOptions | None = None,
) -> list[dict[str, Any]]:
    """Content blocks (a caption + an image per image document, text documents as text).

    The blocks of :func:`build_image_rag_content` (same arguments); skipped documents are
    reported to ``on_skip``.

    Example:
        .. code-block:: python

            from langchain_core.messages import HumanMessage
            from langchain_image_embeddings.messages import image_documents_to_content_blocks

            docs = retriever.invoke("a red rocket")
            blocks = image_documents_to_content_blocks(docs, max_side=384)
            message = HumanMessage(content=[{"type": "text", "text": "Describe them."}, *blocks])
    """
    return build_image_rag_content(
        documents,
        max_side=max_side,
        image_format=image_format,
        style=style,
        caption=caption,
        caption_metadata=caption_metadata,
        on_error=on_error,
        on_skip=on_skip,
        remote_images=remote_images,
        load_options=load_options,
    ).blocks


def _message(question: str, content: ImageRAGContent) -> HumanMessage:
    blocks: list[str | dict[str, Any]] = [{"type": "text", "text": question}]
    blocks.extend(content.blocks)
    # response_metadata: read by no provider when sending, so it never reaches the LLM
    metadata = {"skipped_documents": [s.as_dict() for s in content.skipped]}
    return HumanMessage(content=blocks, response_metadata=metadata)


def image_rag_message(
    question: str,
    documents: Sequence[Document],
    *,
    max_side: int = 512,
    image_format: str = "JPEG",
    style: BlockStyle = "langchain",
    caption: CaptionFn | None = default_caption,
    caption_metadata: Sequence[str] = (),
    on_error: MessageOnError = "skip",
    on_skip: Callable[[SkippedDocument], None] | None = None,
    remote_images: RemoteImages = "inline",
    load_options: ImageLoadOptions | None = None,
) -> HumanMessage:
    """One ``HumanMessage``: the question, then the retrieved documents as content blocks.

    Arguments after ``documents`` are :func:`build_image_rag_content`'s. Documents whose
    image could not be read are listed in ``message.response_metadata["skipped_documents"]``
    (``index``, ``name``, ``reason``, ``code``), which providers do not send.

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
    content = build_image_rag_content(
        documents,
        max_side=max_side,
        image_format=image_format,
        style=style,
        caption=caption,
        caption_metadata=caption_metadata,
        on_error=on_error,
        on_skip=on_skip,
        remote_images=remote_images,
        load_options=load_options,
    )
    return _message(question, content)


class ImageRAGPrompt(RunnableSerializable[dict[str, Any], ChatPromptValue]):
    """A prompt template for LCEL: ``{"question": ..., "docs": [...]}`` -> chat messages.

    It formats like a ``ChatPromptTemplate`` (its output pipes into any chat model): an
    optional system message, then :func:`image_rag_message` of the question and documents.

    Key init args:
        system: str | None
            A system message put first.
        question_key / documents_key: str
            The input keys (default ``"question"`` and ``"docs"``).
        max_side, image_format, style, caption, caption_metadata, on_error, on_skip,
        remote_images, load_options:
            As in :func:`build_image_rag_content`.

    Instantiate and use in a chain:
        .. code-block:: python

            from langchain_core.runnables import RunnablePassthrough
            from langchain_image_embeddings.messages import ImageRAGPrompt

            prompt = ImageRAGPrompt(system="Answer from the images.", max_side=384)
            chain = {"docs": retriever, "question": RunnablePassthrough()} | prompt | vision_llm
            chain.invoke("Which photo shows a rocket?")
    """

    system: str | None = None
    question_key: str = "question"
    documents_key: str = "docs"
    max_side: int = Field(default=512, gt=0)
    image_format: str = "JPEG"
    style: BlockStyle = "langchain"
    caption: CaptionFn | None = default_caption
    caption_metadata: Sequence[str] = ()
    on_error: MessageOnError = "skip"
    on_skip: Callable[[SkippedDocument], None] | None = None
    remote_images: RemoteImages = "inline"
    load_options: ImageLoadOptions | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    def _format(self, inputs: dict[str, Any]) -> ChatPromptValue:
        missing = [k for k in (self.question_key, self.documents_key) if k not in inputs]
        if missing:
            raise KeyError(f"ImageRAGPrompt input lacks {missing}; it has {sorted(inputs)}")
        message = image_rag_message(
            str(inputs[self.question_key]),
            list(inputs[self.documents_key]),
            max_side=self.max_side,
            image_format=self.image_format,
            style=self.style,
            caption=self.caption,
            caption_metadata=self.caption_metadata,
            on_error=self.on_error,
            on_skip=self.on_skip,
            remote_images=self.remote_images,
            load_options=self.load_options,
        )
        messages: list[BaseMessage] = []
        if self.system:
            messages.append(SystemMessage(content=self.system))
        messages.append(message)
        return ChatPromptValue(messages=messages)

    def invoke(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> ChatPromptValue:
        """Format the messages (traced as a prompt run)."""
        return self._call_with_config(self._format, input, config, run_type="prompt")

    async def ainvoke(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> ChatPromptValue:
        """Async :meth:`invoke` (images are read in a worker thread)."""
        return await run_in_executor(config, self.invoke, input, config)
