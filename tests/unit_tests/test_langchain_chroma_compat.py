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


def test_the_users_and_langchain_chromas_clients_open_a_store_folder_in_the_same_process(
    tmp_path: Path,
) -> None:
    """Probe round: after our store opened a folder (or the in-memory client), a client of
    the same folder with chromadb's default settings - the user's own, or langchain-chroma's
    ``Chroma(persist_directory=...)`` - failed: "already exists ... with different settings"."""
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_image_embeddings.vectorstores import ChromaImageStore

    emb = DeterministicFakeEmbedding(size=8)
    ours = ChromaImageStore.persistent(tmp_path / "db", emb)
    ours.add_texts(["a"], ids=["a"])
    theirs = Chroma(
        collection_name=ours.collection_name,
        embedding_function=emb,
        persist_directory=str(tmp_path / "db"),
    )
    assert theirs.get(ids=["a"])["documents"] == ["a"]
    assert (
        chromadb.PersistentClient(path=str(tmp_path / "db")).get_collection("images").count() == 1
    )
    ChromaImageStore.from_texts(["b"], emb, ids=["b"], collection_name="in-memory")
    assert chromadb.EphemeralClient().get_collection("in-memory").count() == 1
    ours.close()


def test_a_store_opens_a_folder_whose_client_turned_telemetry_off(tmp_path: Path) -> None:
    """The other order and settings: a client made with ``anonymized_telemetry=False``
    (as many scripts do) runs first; our store joins it instead of failing."""
    import chromadb
    from chromadb.config import Settings
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_image_embeddings.vectorstores import ChromaImageStore

    user = chromadb.PersistentClient(
        path=str(tmp_path / "db"), settings=Settings(anonymized_telemetry=False)
    )
    store = ChromaImageStore.persistent(tmp_path / "db", DeterministicFakeEmbedding(size=8))
    store.add_texts(["a"], ids=["a"])
    assert user.get_collection("images").count() == 1
    store.close()
