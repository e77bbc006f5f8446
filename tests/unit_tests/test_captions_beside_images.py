"""Captions (text documents) stored beside image vectors in one store, searched together or
apart, returned as their parent images: the MultiVectorRetriever pattern without hand work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.errors import EncoderError
from langchain_image_embeddings.retrievers import TextToImageRetriever
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.store_helpers import StoreFactory, write_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAPTIONS = {
    "img00.png": "a tabby cat asleep on a red sofa",
    "img01.png": "a red rocket on the launch pad",
    "img02.png": "a cup of black coffee",
}


def test_captions_and_images_in_one_store_return_parents(
    make_store: StoreFactory, tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    write_folder(tmp_path / "photos", 4)
    store = make_store(tiny_clip_embeddings)
    store.add_documents(ImageDirectoryLoader(tmp_path / "photos").load())
    images = {Path(d.metadata["source"]).name: d for d in store.get_by_ids(list(store.records()))}
    captions = [
        Document(
            page_content=text,
            metadata={"kind": "text", "source": str(images[name].metadata["source"])},
        )
        for name, text in CAPTIONS.items()
    ]
    ids = store.add_documents(captions)  # read each caption as a file path before
    assert len(store) == 4 + 3 and store.add_documents(captions) == ids  # content ids
    stored = store.get_by_ids(ids)
    assert {d.metadata["kind"] for d in stored} == {"text"}
    assert all("source" not in d.metadata for d in stored)  # no path of its own
    assert {d.metadata["parent_id"] for d in stored} == {images[n].id for n in CAPTIONS}

    together = TextToImageRetriever(store=store, k=4)
    hits = together.invoke("a red rocket on the launch pad")
    # the caption matched exactly; it comes back as its parent image, once
    assert hits[0].id == images["img01.png"].id
    assert Path(hits[0].page_content).name == "img01.png"
    assert hits[0].metadata["matched_text"] == CAPTIONS["img01.png"]
    assert len({d.id for d in hits}) == len(hits) == 4
    assert all(d.metadata.get("kind") != "text" for d in hits)

    texts = together.invoke(
        "a red rocket on the launch pad", document_kinds="text", return_parents=False
    )
    assert texts[0].page_content == CAPTIONS["img01.png"] and len(texts) == 3
    only_images = together.invoke("a red rocket on the launch pad", document_kinds="image", k=10)
    assert len(only_images) == 4 and not any("matched_text" in d.metadata for d in only_images)
    raw = together.invoke("a cup of black coffee", return_parents=False, k=1)
    assert raw[0].metadata["kind"] == "text"


def test_text_documents_need_a_text_tower(lite0_embeddings: Any, tmp_path: Path) -> None:
    store = FAISSImageStore(lite0_embeddings)
    with pytest.raises(EncoderError, match="text tower"):
        store.add_documents([Document(page_content="a cat", metadata={"kind": "text"})])
