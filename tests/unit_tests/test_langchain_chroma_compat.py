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


def test_stores_share_chroma_clients_made_with_default_settings(tmp_path: Path) -> None:
    """Probe round: a client the user made first (default settings) made our in-memory and
    folder stores fail ("An instance of Chroma already exists ... with different settings")."""
    import chromadb
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_image_embeddings.vectorstores import ChromaImageStore

    emb = DeterministicFakeEmbedding(size=8)
    chromadb.EphemeralClient()  # the user's own, default settings
    store = ChromaImageStore.from_texts(["a"], emb, ids=["a"], collection_name="defaults")
    assert [d.id for d in store.get_by_ids(["a"])] == ["a"]
    user = chromadb.PersistentClient(path=str(tmp_path / "db"))
    folder = ChromaImageStore.persistent(tmp_path / "db", emb, collection_name="shared")
    folder.add_texts(["b"], ids=["b"])
    assert user.get_collection("shared").count() == 1
    folder.close()
