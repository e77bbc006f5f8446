"""A store reads each image once: an http(s) image is downloaded once, and the SHA-256 a record
carries is the hash of the bytes its vector was made from."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.images import ImageLoadOptions
from langchain_image_embeddings.vectorstores import _ingest
from tests.unit_tests.image_server import CountingImageServer
from tests.unit_tests.store_helpers import StoreFactory


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def server(photos: dict[str, Image.Image]) -> Iterator[CountingImageServer]:
    served = {
        "/cat.png": _png(photos["chelsea"].resize((64, 48))),
        "/coffee.png": _png(photos["coffee"].resize((48, 64))),
    }
    server = CountingImageServer(served)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def remote_clip(tiny_clip_encoder: Any) -> ImageEmbeddings:
    options = ImageLoadOptions(allow_remote=True, allowed_hosts=("127.0.0.1",))
    return ImageEmbeddings(tiny_clip_encoder, device="cpu", load_options=options)


def test_an_http_image_added_to_a_store_is_fetched_once(
    make_store: StoreFactory, server: CountingImageServer, remote_clip: ImageEmbeddings
) -> None:
    store = make_store(remote_clip)
    urls = [server.url("/cat.png"), server.url("/coffee.png")]
    result = store.add_images(urls)
    assert not result.failures and len(result.added) == 2
    assert server.requests == {"/cat.png": 1, "/coffee.png": 1}

    for url, doc in zip(urls, store.get_by_ids(result.input_ids), strict=True):
        served = server.files["/" + url.rsplit("/", 1)[1]]
        assert doc.metadata["source"] == url
        assert doc.metadata["sha256"] == hashlib.sha256(served).hexdigest()
        # the stored vector is the one of the served bytes, not of anything else
        (stored,) = store.get_vectors([str(doc.id)])
        np.testing.assert_allclose(stored, remote_clip.embed_images([served])[0], atol=1e-5)

    # Added again: the plan reads each image once to hash it, and embeds nothing.
    again = store.add_images(urls)
    assert sorted(again.skipped) == sorted(result.input_ids) and not again.added
    assert server.requests == {"/cat.png": 2, "/coffee.png": 2}


def test_add_texts_with_given_ids_fetches_an_http_image_once(
    make_store: StoreFactory, server: CountingImageServer, remote_clip: ImageEmbeddings
) -> None:
    store = make_store(remote_clip)
    assert store.add_texts([server.url("/cat.png")], ids=["cat"]) == ["cat"]
    assert server.requests == {"/cat.png": 1}
    (doc,) = store.get_by_ids(["cat"])
    assert doc.metadata["sha256"] == hashlib.sha256(server.files["/cat.png"]).hexdigest()


def test_a_file_rewritten_between_read_and_embedding_is_not_recorded_with_a_stale_hash(
    make_store: StoreFactory,
    tiny_clip_encoder: Any,
    photos: dict[str, Image.Image],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan hashes a file, then the file changes: the record would carry the old hash
    over the new pixels. It fails with code ``changed`` instead, and the other image is added."""
    stable, moving = tmp_path / "stable.png", tmp_path / "moving.png"
    stable.write_bytes(_png(photos["coffee"].resize((40, 40))))
    moving.write_bytes(_png(photos["chelsea"].resize((40, 40))))
    real_read = _ingest.read_image_source

    def read_then_rewrite(uri: str, options: Any = None) -> Any:
        source = real_read(uri, options)
        if uri == str(moving):
            moving.write_bytes(_png(photos["astronaut"].resize((40, 40))))
        return source

    monkeypatch.setattr(_ingest, "read_image_source", read_then_rewrite)
    store = make_store(ImageEmbeddings(tiny_clip_encoder, device="cpu"))
    result = store.add_images([str(stable), str(moving)])
    assert [(f.index, f.code) for f in result.failures] == [(1, "changed")]
    assert len(result.added) == 1 and len(store) == 1
    (doc,) = store.get_by_ids(result.added)
    assert doc.metadata["sha256"] == hashlib.sha256(stable.read_bytes()).hexdigest()
