"""A CLIP model handed image paths as *text* warns once, naming ``embed_image`` / ``add_images``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.embeddings import looks_like_image_uri
from tests.unit_tests.store_helpers import write_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def clip(tiny_clip_encoder: Any) -> ImageEmbeddings:
    """A fresh embeddings object (the warning is once per object) over the shared tiny CLIP."""
    return ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=8)


def _image_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


def test_existing_image_path_as_text_warns_once_per_object(
    clip: ImageEmbeddings, tiny_clip_encoder: Any, tmp_path: Path
) -> None:
    path = str(write_image(tmp_path / "cat.jpg", seed=1, fmt="JPEG"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clip.embed_documents(["a cat", path])  # what stock FAISS.from_texts(paths, clip) does
        clip.embed_query(path)
        clip.embed_documents([path])
    messages = _image_warnings(record)
    assert len(messages) == 1, messages
    assert "embed_image" in messages[0] and "add_images" in messages[0] and "cat.jpg" in messages[0]

    other = ImageEmbeddings(tiny_clip_encoder, device="cpu")  # a new object warns again
    with pytest.warns(UserWarning, match="as TEXT"):
        other.embed_query(path)


@pytest.mark.parametrize(
    "uri",
    [
        "data:image/png;base64,iVBORw0KGgo=",
        "https://example.com/photos/cat.JPG",
        "http://example.com/a/b.webp?size=large",
        "file:///srv/photos/cat.png",
    ],
)
def test_image_uris_as_text_warn(clip: ImageEmbeddings, uri: str) -> None:
    with pytest.warns(UserWarning, match="embed_image"):
        clip.embed_query(uri)


@pytest.mark.parametrize(
    "text",
    [
        "a photo of a cat",
        "missing/cat.jpg",  # image suffix, but no such file: a caption could say that
        "https://example.com/page.html",
        "cat.jpg\nand a dog",
        "x" * 5000 + ".jpg",
    ],
)
def test_plain_texts_do_not_warn(clip: ImageEmbeddings, text: str) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clip.embed_query(text)
    assert _image_warnings(record) == []


def test_existing_non_image_file_is_not_an_image_uri(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert not looks_like_image_uri(str(notes))
    (tmp_path / "album.jpg").mkdir()  # a folder with an image suffix is not an image
    assert not looks_like_image_uri(str(tmp_path / "album.jpg"))
    assert looks_like_image_uri(str(write_image(tmp_path / "dog.png", seed=2)))
