"""Captions stored beside images (``kind="text"``) on the served page: a search that matches a
caption shows the image it describes (once, with the caption as ``matched_text``); captions
are never browse cards nor members of duplicate groups."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from langchain_core.documents import Document

from langchain_image_embeddings.serve import create_app
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.store_helpers import write_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAPTION = "a red rocket on the launch pad"


@pytest.fixture(scope="module")
def captioned(tiny_clip_embeddings: Any, tmp_path_factory: Any) -> tuple[TestClient, Any, Any]:
    from langchain_image_embeddings.sync import sync_directory

    root = tmp_path_factory.mktemp("captions")
    write_folder(root / "photos", 4)
    store = FAISSImageStore(tiny_clip_embeddings)
    sync_directory(store, root / "photos")
    images = store.get_by_ids(list(store.records()))
    target = images[1]
    # the same words beside two images: identical text vectors, which must not make the two
    # images a duplicate group
    store.add_documents(
        [
            Document(page_content=CAPTION, metadata={"kind": "text", "parent_id": target.id}),
            Document(
                page_content="an old map", metadata={"kind": "text", "parent_id": images[2].id}
            ),
            Document(
                page_content="an old map", metadata={"kind": "text", "parent_id": images[3].id}
            ),
        ]
    )
    return TestClient(create_app(store)), store, target


def test_a_matching_caption_answers_as_its_image(captioned: Any) -> None:
    client, store, target = captioned
    hits = client.get("/api/search/text", params={"q": CAPTION, "k": 4}).json()["results"]
    assert hits[0]["id"] == target.id  # the caption matched exactly: its image comes first
    assert hits[0]["metadata"]["matched_text"] == CAPTION
    assert all(h["metadata"].get("kind") != "text" for h in hits)
    assert len({h["id"] for h in hits}) == len(hits) == 4  # every image once, k filled
    image_ids = {i for i, m in store.records().items() if m.get("kind") != "text"}
    assert {h["id"] for h in hits} == image_ids


def test_more_like_this_shows_images_only(captioned: Any) -> None:
    client, _, target = captioned
    hits = client.get(f"/api/similar/{target.id}", params={"k": 10}).json()["results"]
    assert hits and all(h["metadata"].get("kind") != "text" for h in hits)
    assert target.id not in {h["id"] for h in hits}
    assert len({h["id"] for h in hits}) == len(hits) == 3


def test_captions_are_not_browsed_nor_duplicates(captioned: Any) -> None:
    client, store, _ = captioned
    body = client.get("/api/browse", params={"order": "random", "k": 20}).json()
    captions = {i for i, m in store.records().items() if m.get("kind") == "text"}
    assert len(captions) == 3
    assert body["total"] == 4 and not captions & {h["id"] for h in body["results"]}
    groups = client.get("/api/duplicates", params={"threshold": 0.99}).json()["groups"]
    members = {m["id"] for g in groups for m in g["members"]}
    assert not captions & members
