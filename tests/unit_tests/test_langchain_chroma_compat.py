"""langchain-chroma calls ``embed_image(uris=...)``: our embeddings work there unchanged."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from langchain_image_embeddings.samples import PHOTO_NAMES

pytest.importorskip("langchain_chroma")


def test_add_images_and_similarity_search_by_image(lite0_embeddings, photos_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import chromadb
    from langchain_chroma import Chroma

    store = Chroma(
        collection_name=f"compat-{uuid.uuid4().hex[:8]}",
        embedding_function=lite0_embeddings,
        client=chromadb.EphemeralClient(),
        collection_metadata={"hnsw:space": "cosine"},
    )
    uris = [str(photos_dir / f"{name}.jpg") for name in PHOTO_NAMES]
    ids = store.add_images(uris=uris, metadatas=[{"name": n} for n in PHOTO_NAMES])
    assert len(ids) == len(PHOTO_NAMES)
    hits = store.similarity_search_by_image(uri=str(photos_dir / "copies" / "coffee-crop.jpg"), k=2)
    assert hits[0].metadata["name"] == "coffee"
