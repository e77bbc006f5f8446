"""Image documents as chat-message content blocks for a vision LLM (``messages.py``)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from PIL import Image

from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.messages import (
    ImageRAGPrompt,
    SkippedDocument,
    build_image_rag_content,
    default_caption,
    document_kind,
    image_documents_to_content_blocks,
    image_rag_message,
    image_to_base64,
)
from tests.unit_tests.store_helpers import write_image


@pytest.fixture
def photo(tmp_path: Path) -> Document:
    path = write_image(tmp_path / "wide photo ü.png", seed=3, size=300)
    return Document(page_content=str(path), metadata={"source": str(path)})


def test_blocks_carry_shrunk_images_in_both_styles(photo: Document) -> None:
    blocks = image_documents_to_content_blocks([photo], max_side=64)
    # the file name only: a local folder never reaches a hosted LLM
    assert blocks[0] == {"type": "text", "text": "[image 1] wide photo ü.png"}
    assert blocks[1]["type"] == "image" and blocks[1]["mime_type"] == "image/jpeg"
    image = Image.open(io.BytesIO(base64.b64decode(blocks[1]["base64"])))
    assert image.format == "JPEG" and max(image.size) == 64
    openai = image_documents_to_content_blocks([photo], style="openai", caption=None)
    assert [b["type"] for b in openai] == ["image_url"]
    assert openai[0]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")
    message = image_rag_message("What is shown?", [photo, photo])
    assert [b["type"] for b in message.content] == ["text", "text", "image", "text", "image"]  # type: ignore[index]


def test_jpg_is_jpeg_and_unknown_formats_or_styles_say_what_is_allowed(photo: Document) -> None:
    """``image_format="jpg"`` raised Pillow's bare ``KeyError('JPG')``; an unknown ``style``
    silently produced LangChain blocks."""
    data, mime = image_to_base64(photo.page_content, image_format="jpg", max_side=32)
    assert mime == "image/jpeg" and Image.open(io.BytesIO(base64.b64decode(data))).format == "JPEG"
    data, mime = image_to_base64(photo.page_content, image_format="webp", max_side=32)
    assert mime == "image/webp" and Image.open(io.BytesIO(base64.b64decode(data))).format == "WEBP"
    with pytest.raises(ValueError, match=r"image_format 'tiff'.*JPEG.*PNG.*WEBP"):
        image_to_base64(photo.page_content, image_format="tiff")
    with pytest.raises(ValueError, match="style 'anthropic'"):
        image_documents_to_content_blocks([photo], style="anthropic")  # type: ignore[arg-type]


# -- real retrieval results: text, deleted files, base64, URLs ------------------------------
def _types(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["type"] for b in blocks]


def test_text_documents_pass_through_and_a_deleted_file_is_skipped_and_named(
    photo: Document, tmp_path: Path
) -> None:
    gone = write_image(tmp_path / "sub" / "deleted.jpg", seed=4, fmt="JPEG")
    gone.unlink()  # indexed, then deleted: ImageLoadError [not_found] failed the whole chain
    docs = [
        Document(page_content="A tabby cat asleep on a red sofa.", metadata={"source": "notes"}),
        photo,
        Document(page_content=str(gone), metadata={"source": str(gone)}),
    ]
    seen: list[SkippedDocument] = []
    message = image_rag_message("Which is a cat?", docs, max_side=32, on_skip=seen.append)
    assert _types(message.content) == ["text", "text", "text", "image"]  # type: ignore[arg-type]
    assert message.content[1] == {"type": "text", "text": "A tabby cat asleep on a red sofa."}
    (skipped,) = message.response_metadata["skipped_documents"]
    assert skipped["index"] == 2 and skipped["name"] == "deleted.jpg"
    assert skipped["code"] == "not_found" and str(tmp_path) not in str(skipped)
    assert seen == [SkippedDocument(2, "deleted.jpg", seen[0].reason, "not_found")]

    placeholder = build_image_rag_content(docs, max_side=32, on_error="placeholder")
    assert placeholder.blocks[-1]["text"].startswith("[image unavailable] deleted.jpg:")
    assert placeholder.images == 1 and len(placeholder.skipped) == 1
    with pytest.raises(ImageLoadError, match=r"input #2 .*deleted\.jpg.*\[not_found\]"):
        build_image_rag_content(docs, on_error="raise")


def test_base64_page_content_and_data_uris_are_images(photo: Document) -> None:
    raw = Path(photo.page_content).read_bytes()
    chroma_style = Document(page_content=base64.b64encode(raw).decode())  # langchain-chroma
    data_uri = Document(page_content="data:image/png;base64," + base64.b64encode(raw).decode())
    assert document_kind(chroma_style) == document_kind(data_uri) == "image"
    content = build_image_rag_content([chroma_style, data_uri], max_side=16)
    assert _types(content.blocks) == ["text", "image", "text", "image"]
    assert content.blocks[0]["text"] == "[image 1] inline image" and not content.skipped
    decoded = Image.open(io.BytesIO(base64.b64decode(content.blocks[1]["base64"])))
    assert max(decoded.size) == 16
    # prose that happens to be base64-alphabet is still text
    assert document_kind(Document(page_content="Hello")) == "text"
    assert document_kind(Document(page_content="SGVsbG8gd29ybGQhIHRoaXMgaXMgdGV4dA==")) == "text"


def test_http_images_as_url_blocks_download_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain_image_embeddings.images._fetch as fetch

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("downloaded")

    monkeypatch.setattr(fetch, "fetch_url", no_network)
    doc = Document(page_content="https://example.com/photos/cat.jpg?x=1")
    blocks = image_documents_to_content_blocks([doc], remote_images="url")
    assert blocks == [
        {"type": "text", "text": "[image 1] cat.jpg"},
        {"type": "image", "url": "https://example.com/photos/cat.jpg?x=1"},
    ]
    openai = image_documents_to_content_blocks([doc], remote_images="url", style="openai")
    assert openai[1] == {"type": "image_url", "image_url": {"url": doc.page_content}}
    # inline (the default) refuses a remote URL unless allowed: skipped, named
    content = build_image_rag_content([doc])
    assert content.blocks == [] and content.skipped[0].name == "cat.jpg"


def test_captions_name_files_and_chosen_metadata_never_paths(photo: Document) -> None:
    doc = Document(
        page_content=photo.page_content,
        metadata={**photo.metadata, "page": 3, "origin": photo.page_content, "secret": "x"},
    )
    blocks = image_documents_to_content_blocks(
        [doc], max_side=16, caption_metadata=("page", "origin", "missing")
    )
    assert blocks[0]["text"] == "[image 1] wide photo ü.png (page: 3, origin: wide photo ü.png)"

    def mine(d: Document, n: int) -> str:
        return f"Figure {n}: {d.metadata['page']}"

    assert image_documents_to_content_blocks([doc], max_side=16, caption=mine)[0] == {
        "type": "text",
        "text": "Figure 1: 3",
    }
    assert _types(image_documents_to_content_blocks([doc], max_side=16, caption=None)) == ["image"]
    assert default_caption(Document(page_content="r.pdf#page=3"), 2) == "[image 2] r.pdf#page=3"


def test_options_are_typed_keywords(photo: Document) -> None:
    with pytest.raises(TypeError, match="max_sid"):
        image_rag_message("q", [photo], max_sid=32)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="on_error 'ignore'"):
        image_rag_message("q", [photo], on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="remote_images 'fetch'"):
        image_rag_message("q", [photo], remote_images="fetch")  # type: ignore[arg-type]


def test_image_rag_prompt_is_an_lcel_prompt(photo: Document, tmp_path: Path) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    gone = Document(page_content=str(tmp_path / "gone.png"))
    retriever = RunnableLambda(lambda q: [photo, gone])
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="a ramp")]))
    skipped: list[SkippedDocument] = []
    prompt = ImageRAGPrompt(system="Answer from the images.", max_side=16, on_skip=skipped.append)
    value = ({"docs": retriever, "question": RunnablePassthrough()} | prompt).invoke("What?")
    system, human = value.to_messages()
    assert system.content == "Answer from the images."
    assert _types(human.content) == ["text", "text", "image"]  # type: ignore[arg-type]
    assert human.content[0] == {"type": "text", "text": "What?"}
    assert [s.name for s in skipped] == ["gone.png"]
    chain = {"docs": retriever, "question": RunnablePassthrough()} | prompt | llm
    assert chain.invoke("What?").content == "a ramp"
    with pytest.raises(ValueError, match="extra"):
        ImageRAGPrompt(max_sid=3)  # type: ignore[call-arg]
    with pytest.raises(KeyError, match="lacks"):
        prompt.invoke({"query": "x", "docs": []})


async def test_image_rag_prompt_async(photo: Document) -> None:
    value = await ImageRAGPrompt(caption=None, max_side=8).ainvoke(
        {"question": "q", "docs": [photo]}
    )
    assert _types(value.to_messages()[0].content) == ["text", "image"]  # type: ignore[arg-type]


def test_pdf_page_and_figure_addresses_are_images_and_captioned_in_words() -> None:
    # a figure's address ends in "&figure=K": it is an image like its page (the search result
    # that found it must reach the LLM as a picture, not as the text of its address)
    page = Document(page_content="/data/reports/q3.pdf#page=2", metadata={"kind": "page"})
    figure = Document(
        page_content="/data/reports/q3.pdf#page=2&figure=1",
        metadata={"kind": "figure", "document": "/data/reports/q3.pdf", "page": 2, "figure": 1},
    )
    assert document_kind(page) == "image"
    assert document_kind(figure) == "image"
    assert document_kind(Document(page_content="q3.pdf#page=0")) == "text"  # not an address
    assert default_caption(figure, 1) == "[image 1] q3.pdf, page 2, figure 1"
