"""The API behind the page as a tool (FastAPI TestClient): metadata keys, case-insensitive
filters, browse, paged near-duplicate groups with keepers, removal behind the write flag,
originals, and error messages a person can act on."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from PIL import Image

from langchain_image_embeddings.serve import ServeSettings, create_app
from langchain_image_embeddings.serve.catalog import MetadataCatalog
from langchain_image_embeddings.serve.session import friendly_size
from tests.serve_helpers import photo_store


@pytest.fixture(scope="module")
def lite0_store(lite0_embeddings: Any, photos_dir: Path, tmp_path_factory: Any) -> Any:
    return photo_store(lite0_embeddings, photos_dir, tmp_path_factory.mktemp("lite0"))


@pytest.fixture(scope="module")
def client(lite0_store: Any) -> TestClient:
    store, _ = lite0_store
    return TestClient(create_app(store, ServeSettings(max_upload_pixels=1_000_000)))


def test_metadata_keys_list_values_to_filter_on(client: TestClient) -> None:
    body = client.get("/api/metadata").json()
    assert body["count"] == 40
    keys = {k["key"]: k for k in body["keys"]}
    assert keys["format"]["samples"] == ["JPEG"] and keys["format"]["kind"] == "text"
    assert keys["width"]["kind"] == "number" and keys["width"]["count"] == 40
    assert keys["source"]["samples"] == []  # a path per image: nothing to offer


def test_text_filters_ignore_case_only_where_unambiguous() -> None:
    catalog = MetadataCatalog(
        {
            "a": {"format": "JPEG", "name": "a.jpg"},
            "b": {"format": "PNG", "name": "A.JPG"},
            "c": {"format": "PNG", "name": "b.png"},
        }
    )
    assert catalog.resolve("format", "jpeg") == "JPEG"
    assert catalog.resolve("format", "Png") == "PNG"
    assert catalog.resolve("name", "a.JPG") == "a.JPG"  # a.jpg and A.JPG: ambiguous, exact
    assert catalog.resolve("name", "B.PNG") == "b.png"
    assert catalog.resolve("missing", "x") == "x"


def test_api_filters_match_regardless_of_case(client: TestClient) -> None:
    upper = client.get("/api/browse?order=recent&k=50&filter=format=JPEG").json()
    lower = client.get("/api/browse?order=recent&k=50&filter=format=jpeg").json()
    assert upper["total"] == lower["total"] == 40
    assert client.get("/api/browse?order=recent&filter=format=gif").json()["total"] == 0


def test_browse_recent_random_and_pages(client: TestClient) -> None:
    recent = client.get("/api/browse?order=recent&k=40").json()
    mtimes = [h["metadata"]["mtime"] for h in recent["results"]]
    assert recent["total"] == 40 and mtimes == sorted(mtimes, reverse=True)
    one = client.get("/api/browse?order=random&seed=7&k=10").json()["results"]
    again = client.get("/api/browse?order=random&seed=7&k=10").json()["results"]
    other = client.get("/api/browse?order=random&seed=8&k=10").json()["results"]
    assert [h["id"] for h in one] == [h["id"] for h in again] != [h["id"] for h in other]
    page2 = client.get("/api/browse?order=random&seed=7&k=10&offset=10").json()
    assert page2["results"][0]["rank"] == 11
    assert not {h["id"] for h in one} & {h["id"] for h in page2["results"]}
    assert client.get("/api/browse?order=sideways").status_code == 422


def test_duplicate_groups_are_paged_with_keepers(client: TestClient) -> None:
    first = client.get("/api/duplicates?threshold=0.9&limit=3").json()
    rest = client.get("/api/duplicates?threshold=0.9&limit=100&offset=3").json()
    assert first["total_groups"] == 8 and len(first["groups"]) == 3 and len(rest["groups"]) == 5
    assert first["method"] == "centroid" and rest["offset"] == 3
    seen = [m["id"] for g in first["groups"] + rest["groups"] for m in g["members"]]
    assert len(seen) == len(set(seen)) == 40  # every group reachable, none twice
    for group in first["groups"] + rest["groups"]:
        pixels = {
            m["id"]: m["metadata"]["width"] * m["metadata"]["height"] for m in group["members"]
        }
        assert pixels[group["keeper"]] == max(pixels.values())
    single = client.get("/api/duplicates?threshold=0.9&method=single").json()
    assert single["method"] == "single" and single["total_groups"] == 8
    assert client.get("/api/duplicates?method=average").status_code == 422


def test_removal_needs_the_write_flag_and_never_deletes_files(tmp_path: Path) -> None:
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (8, 8), (i * 80, 0, 0)).save(path)
        paths.append(path)
    store = FAISSImageStore(DeterministicFakeEmbedding(size=3), tmp_path / "index")
    docs = [Document(page_content=str(p), metadata={"source": str(p)}) for p in paths]
    store.upsert_vectors(["a", "b", "c"], np.eye(3, dtype=np.float32), docs)
    # a store of text embeddings cannot be served; the check is on the session itself
    from langchain_image_embeddings.serve.session import ApiError, StoreSession

    read_only = StoreSession(store, ServeSettings())
    with pytest.raises(ApiError) as refused:
        read_only.remove(["a"])
    assert refused.value.status == 403 and "--allow-delete" in refused.value.message
    writable = StoreSession(store, ServeSettings(allow_delete=True))
    assert writable.remove(["a", "nope"]) == ["a"]
    assert len(store) == 2 and all(p.exists() for p in paths)


def test_remove_route_is_refused_on_a_read_only_server(client: TestClient) -> None:
    answer = client.post("/api/records/remove", json={"ids": ["anything"]})
    assert answer.status_code == 403 and answer.json()["error"] == "read_only"
    assert client.get("/api/info").json()["allow_delete"] is False


def test_original_is_the_stored_file(client: TestClient, lite0_store: Any) -> None:
    store, _ = lite0_store
    record_id, meta = next(iter(store.records().items()))
    answer = client.get(f"/api/originals/{record_id}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.content == Path(meta["source"]).read_bytes()
    assert client.get("/api/originals/no-such-record").status_code == 404


def test_upload_errors_say_what_to_do(client: TestClient) -> None:
    big = io.BytesIO()
    Image.new("RGB", (1500, 1000)).save(big, format="PNG")  # 1.5 M pixels, limit 1 M
    answer = client.post(
        "/api/search/image", files={"file": ("big.png", big.getvalue(), "image/png")}
    )
    body = answer.json()
    assert answer.status_code == 413 and body["error"] == "decompression_bomb"
    assert "1500 x 1000 pixels (1.5 million)" in body["message"]
    assert "up to 1.0 million pixels" in body["message"] and "Resize it" in body["message"]
    assert "ImageLoadOptions" not in body["message"]
    text = client.post("/api/search/image", files={"file": ("a.jpg", b"hello", "image/jpeg")})
    assert "Try a JPEG, PNG or WebP file" in text.json()["message"]
    assert friendly_size(16 * 1024 * 1024) == "16 MB" and friendly_size(1536) == "1.5 KB"
