"""Image documents as chat-message content blocks for a vision LLM (``messages.py``)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from langchain_core.documents import Document
from PIL import Image

from langchain_image_embeddings.messages import (
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
    assert blocks[0] == {"type": "text", "text": f"[image 1] {photo.metadata['source']}"}
    assert blocks[1]["type"] == "image" and blocks[1]["mime_type"] == "image/jpeg"
    image = Image.open(io.BytesIO(base64.b64decode(blocks[1]["base64"])))
    assert image.format == "JPEG" and max(image.size) == 64
    openai = image_documents_to_content_blocks([photo], style="openai", captions=False)
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
