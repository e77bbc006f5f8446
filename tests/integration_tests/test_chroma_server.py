"""The Chroma adapter against a real Chroma server (``chroma run`` on 127.0.0.1)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from langchain_image_embeddings.retrievers import ImageToImageRetriever, TextToImageRetriever
from langchain_image_embeddings.sync import sync_directory
from langchain_image_embeddings.vectorstores import ChromaImageStore, open_store, store_info
from tests.unit_tests.store_helpers import EncoderSpy, write_folder, write_image
from tests.unit_tests.test_vectorstores_common import (
    run_cli_index_search,
    run_contract,
    run_relevance,
)

pytestmark = pytest.mark.integration


def _collection() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def test_contract_over_http(
    chroma_server: tuple[str, int],
    tiny_clip_embeddings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = chroma_server
    store = ChromaImageStore.http(host, port, tiny_clip_embeddings, collection_name=_collection())
    run_contract(store, tmp_path / "imgs", EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch))


def test_relevance_over_http(
    chroma_server: tuple[str, int], lite0_embeddings: Any, photos_dir: Path
) -> None:
    host, port = chroma_server
    run_relevance(
        ChromaImageStore.http(host, port, lite0_embeddings, collection_name=_collection()),
        photos_dir,
    )


def test_sync_and_reconnect(
    chroma_server: tuple[str, int],
    tiny_clip_embeddings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = chroma_server
    spec = f"chroma+http://{host}:{port}/{_collection()}"
    spy = EncoderSpy(tiny_clip_embeddings.encoder, monkeypatch)
    paths = write_folder(tmp_path / "imgs", 4)
    assert sync_directory(open_store(spec, tiny_clip_embeddings), tmp_path / "imgs").embedded == 4
    assert spy.take() == 4
    write_image(paths[0], seed=91)
    paths[3].unlink()
    result = sync_directory(open_store(spec, tiny_clip_embeddings), tmp_path / "imgs")
    assert spy.take() == 1
    assert (len(result.updated), len(result.removed), len(result.unchanged)) == (1, 1, 2)
    assert store_info(spec)["count"] == 3
    # retrievers work on the server-backed store, sync and async
    store = open_store(spec, tiny_clip_embeddings)
    docs = ImageToImageRetriever(store=store, k=2).invoke(str(paths[1]))
    assert docs[0].page_content == str(paths[1].resolve()) and docs[0].metadata["score"] >= 0.99
    assert len(TextToImageRetriever(store=store, k=3).invoke("a photo")) == 3


async def test_async_retriever_over_http(
    chroma_server: tuple[str, int], tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    host, port = chroma_server
    store = ChromaImageStore.http(host, port, tiny_clip_embeddings, collection_name=_collection())
    paths = write_folder(tmp_path, 3)
    store.add_images(paths)
    docs = await ImageToImageRetriever(store=store, k=1).ainvoke(str(paths[2]))
    assert docs[0].page_content == str(paths[2].resolve())


@pytest.mark.slow
def test_cli_against_the_server(
    chroma_server: tuple[str, int], photos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = chroma_server
    store = f"chroma+http://{host}:{port}/{_collection()}"
    run_cli_index_search(store, photos_dir, capsys)
