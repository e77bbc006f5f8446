"""The JSON API of ``imgemb serve`` (FastAPI TestClient): searches, thumbnails, duplicates,
and every bad input answered with a 4xx JSON error while the app keeps serving."""

from __future__ import annotations

import io
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from PIL import Image

from langchain_image_embeddings.serve import ServeSettings, create_app
from tests.serve_helpers import photo_store

MAX_UPLOAD = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def lite0_store(lite0_embeddings: Any, photos_dir: Path, tmp_path_factory: Any) -> Any:
    return photo_store(lite0_embeddings, photos_dir, tmp_path_factory.mktemp("lite0"))


@pytest.fixture(scope="module")
def client(lite0_store: Any) -> TestClient:
    store, _ = lite0_store
    settings = ServeSettings(max_k=20, max_upload_bytes=MAX_UPLOAD, max_upload_pixels=20_000_000)
    return TestClient(create_app(store, settings))


@pytest.fixture(scope="module")
def clip_client(tiny_clip_embeddings: Any, photos_dir: Path, tmp_path_factory: Any) -> TestClient:
    store, _ = photo_store(
        tiny_clip_embeddings, photos_dir, tmp_path_factory.mktemp("clip"), copies=False
    )
    return TestClient(create_app(store))


def _jpeg(path: Path) -> bytes:
    return path.read_bytes()


def _assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert body["message"], body
    if code is not None:
        assert body["error"] == code, body
    return body


def _still_up(client: TestClient) -> None:
    assert client.get("/api/info").status_code == 200


def test_info_page_and_static_files(client: TestClient, lite0_store: Any) -> None:
    store, _ = lite0_store
    info = client.get("/api/info").json()
    assert info["model"] == "timm:efficientnet_lite0"
    assert info["count"] == len(store) == 40
    assert info["supports_text"] is False
    assert info["kind"] == "faiss" and info["index"] == "flat (exact, cosine)"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<base href="/">' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    for asset in ("static/app.js", "static/style.css"):
        response = client.get("/" + asset)
        assert response.status_code == 200
        assert "//" not in response.text.replace("http://www.w3.org/2000/svg", "").replace(
            "// ", ""
        ).split("\n", 1)[1] or asset.endswith(".css")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_openapi_schema_describes_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/info",
        "/api/search/text",
        "/api/search/image",
        "/api/similar/{record_id}",
        "/api/records/{record_id}",
        "/api/thumbnails/{record_id}",
        "/api/duplicates",
    ):
        assert path in paths, path
    k = next(p for p in paths["/api/search/text"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["maximum"] == 20 and k["schema"]["minimum"] == 1
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_image_upload_finds_the_original_and_writes_nothing(
    client: TestClient, lite0_store: Any
) -> None:
    store, folder = lite0_store
    before = store.records()
    response = client.post(
        "/api/search/image?k=5",
        files={"file": ("query.jpg", _jpeg(folder / "copies/chelsea-crop.jpg"), "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 5
    names = [Path(hit["source"]).name for hit in body["results"]]
    assert names[0] == "chelsea-crop.jpg"
    assert all(name.startswith("chelsea") for name in names)
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.99
    assert store.records() == before  # uploads are queries, never stored


def test_filters_restrict_results(client: TestClient, lite0_store: Any) -> None:
    _, folder = lite0_store
    data = _jpeg(folder / "coffee.jpg")
    width = Image.open(folder / "coffee.jpg").width
    response = client.post(
        f"/api/search/image?k=10&filter=width={width}&filter=format=JPEG",
        files={"file": ("q.jpg", data, "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    hits = response.json()["results"]
    assert hits and all(h["metadata"]["width"] == width for h in hits)


def test_more_like_this_leaves_the_record_out(client: TestClient) -> None:
    hits = client.get("/api/duplicates").json()["groups"][0]["members"]
    record_id = hits[0]["id"]
    response = client.get(f"/api/similar/{record_id}?k=4")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 4 and record_id not in [r["id"] for r in results]
    family = Path(hits[0]["source"]).name.split("-")[0].split(".")[0]
    assert all(Path(r["source"]).name.startswith(family) for r in results)
    record = client.get(f"/api/records/{record_id}").json()
    assert record["id"] == record_id and record["thumbnail"] == f"api/thumbnails/{record_id}"


def test_thumbnails_are_bounded_jpegs_and_cached(client: TestClient) -> None:
    record_id = client.get("/api/duplicates").json()["groups"][0]["members"][0]["id"]
    for size in (128, 256, 512):
        response = client.get(f"/api/thumbnails/{record_id}?size={size}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(response.content))
        assert max(image.size) <= size
    again = client.get(f"/api/thumbnails/{record_id}?size=256")
    assert again.content == client.get(f"/api/thumbnails/{record_id}?size=256").content
    _assert_error(client.get(f"/api/thumbnails/{record_id}?size=4000"), 422, "bad_size")
    _assert_error(client.get(f"/api/thumbnails/{record_id}?size=abc"), 422, "invalid_request")


def test_duplicates_groups_every_photo_with_its_copies(client: TestClient) -> None:
    body = client.get("/api/duplicates?threshold=0.9").json()
    assert body["count"] == 40 and body["total_groups"] == 8
    for group in body["groups"]:
        stems = {Path(m["source"]).name.split("-")[0].split(".")[0] for m in group["members"]}
        assert len(stems) == 1 and group["size"] == 5
        assert group["min_score"] <= group["max_score"] <= 1.0 and group["max_score"] >= 0.9
    _assert_error(client.get("/api/duplicates?threshold=1.5"), 422)
    _assert_error(client.get("/api/duplicates?threshold=0.1"), 422)


def test_text_search_with_clip(clip_client: TestClient) -> None:
    info = clip_client.get("/api/info").json()
    assert info["supports_text"] is True and info["count"] == 8
    response = clip_client.get("/api/search/text", params={"q": "a cat", "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3 and body["query"]["text"] == "a cat"
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)


# -- bad input: each a 4xx JSON error, and the server still answers -----------------------------
def test_text_query_on_an_image_only_model(client: TestClient) -> None:
    _assert_error(client.get("/api/search/text?q=a+cat"), 400, "no_text_tower")
    _assert_error(client.get("/api/search/text?q="), 422)
    _assert_error(client.get("/api/search/text"), 422)
    _still_up(client)


def test_oversized_upload(client: TestClient, lite0_store: Any) -> None:
    store, _ = lite0_store
    big = b"\xff\xd8" + b"\0" * (MAX_UPLOAD + 70_000)
    body = _assert_error(
        client.post("/api/search/image", files={"file": ("big.jpg", big, "image/jpeg")}),
        413,
        "too_large",
    )
    assert "larger than" in body["message"] and "try again" in body["message"]
    # Just over the file cap but within the multipart allowance: refused by the endpoint.
    almost = b"\xff\xd8" + b"\0" * (MAX_UPLOAD + 10)
    _assert_error(
        client.post("/api/search/image", files={"file": ("a.jpg", almost, "image/jpeg")}),
        413,
        "too_large",
    )
    # A small file with too many pixels (pixel cap from the header, nothing decoded).
    huge = io.BytesIO()
    Image.new("L", (6000, 4000)).save(huge, format="PNG")
    _assert_error(
        client.post("/api/search/image", files={"file": ("p.png", huge.getvalue(), "image/png")}),
        413,
        "decompression_bomb",
    )
    assert len(store) == 40
    _still_up(client)


def test_oversized_body_without_content_length(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 100_000

    response = client.post(
        "/api/search/image",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=zzz"},
    )
    _assert_error(response, 413, "too_large")
    _still_up(client)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GIF89a not really", None),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "unsupported_format"),
        (b"just some text, not an image", "unsupported_format"),
        (b"", None),
    ],
)
def test_non_image_upload(client: TestClient, data: bytes, code: str | None) -> None:
    response = client.post("/api/search/image", files={"file": ("x.jpg", data, "image/jpeg")})
    assert 400 <= response.status_code < 500
    _assert_error(response, response.status_code, code)
    _still_up(client)


def test_missing_upload(client: TestClient) -> None:
    _assert_error(client.post("/api/search/image"), 422, "invalid_request")
    _assert_error(client.post("/api/search/image", data={"file": "photos/chelsea.jpg"}), 422)
    _still_up(client)


@pytest.mark.parametrize("route", ["similar", "records", "thumbnails"])
def test_unknown_id(client: TestClient, route: str) -> None:
    body = _assert_error(client.get(f"/api/{route}/no-such-record"), 404, "unknown_id")
    assert "no-such-record" in body["message"]
    _assert_error(client.get(f"/api/{route}/" + "x" * 300), 400, "bad_id")
    _still_up(client)


TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/etc/passwd",
    "..\\..\\windows\\win.ini",
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
]


@pytest.mark.parametrize("attempt", TRAVERSALS)
def test_path_traversal_in_every_parameter(
    client: TestClient, lite0_store: Any, attempt: str
) -> None:
    store, folder = lite0_store
    record_id = next(iter(store.records()))
    photo = _jpeg(folder / "coffee.jpg")
    for route in ("similar", "records", "thumbnails"):  # the id
        response = client.get(f"/api/{route}/{attempt}")
        assert response.status_code in (400, 404), (route, response.text)
        _assert_error(response, response.status_code)
        assert b"root:" not in response.content
    for path in (f"/static/{attempt}", f"/{attempt}", f"/api/{attempt}"):  # the URL path
        response = client.get(path)
        assert 400 <= response.status_code < 500 and b"root:" not in response.content
    # the thumbnail size, k and threshold are numbers
    _assert_error(client.get(f"/api/thumbnails/{record_id}", params={"size": attempt}), 422)
    _assert_error(client.get("/api/similar/" + record_id, params={"k": attempt}), 422)
    _assert_error(client.get("/api/duplicates", params={"threshold": attempt}), 422)
    # a filter key or value
    for value in (f"source={attempt}", f"{attempt}=x"):
        response = client.get("/api/similar/" + record_id, params={"filter": value})
        if ".." in urllib.parse.unquote(attempt) or value.startswith(attempt):
            _assert_error(response, 400, "bad_filter")
        else:  # compared with stored metadata, never opened: matches nothing
            assert response.status_code == 200 and response.json()["count"] == 0
    # the upload's file name
    response = client.post(
        "/api/search/image", files={"file": (attempt.replace("%2F", "/"), photo, "image/jpeg")}
    )
    if "/" in attempt.replace("%2F", "/") or "\\" in attempt:
        _assert_error(response, 400, "bad_filename")
    else:
        assert response.status_code == 200
    _still_up(client)


@pytest.mark.parametrize("k", ["0", "-1", "21", "1000000", "abc", "1.5", ""])
def test_k_out_of_range(client: TestClient, lite0_store: Any, k: str) -> None:
    store, folder = lite0_store
    record_id = next(iter(store.records()))
    for response in (
        client.get(f"/api/similar/{record_id}", params={"k": k}),
        client.get("/api/search/text", params={"q": "cat", "k": k}),
        client.post(
            "/api/search/image",
            params={"k": k},
            files={"file": ("q.jpg", _jpeg(folder / "coffee.jpg"), "image/jpeg")},
        ),
    ):
        body = _assert_error(response, 422)
        assert "k" in body["message"]
    _still_up(client)


def test_bad_filters(client: TestClient, lite0_store: Any) -> None:
    store, _ = lite0_store
    record_id = next(iter(store.records()))
    for bad in ("noequals", "=x", "$or=x", "a b=c", "format=JP\x00EG"):
        response = client.get(f"/api/similar/{record_id}", params={"filter": bad})
        _assert_error(response, 400, "bad_filter")
    many = [f"k{i}=v" for i in range(9)]
    _assert_error(client.get(f"/api/similar/{record_id}", params={"filter": many}), 400)
    _still_up(client)


def test_remote_and_missing_sources_get_no_thumbnail(
    lite0_embeddings: Any, photos_dir: Path, tmp_path: Path
) -> None:
    """A record whose source is a URL is never fetched; a deleted file is a clear 404."""
    import numpy as np
    from langchain_core.documents import Document

    from langchain_image_embeddings.vectorstores import FAISSImageStore

    store = FAISSImageStore(lite0_embeddings, tmp_path / "index")
    vectors = np.eye(2, 1280, dtype=np.float32)
    docs = [
        Document(
            page_content="http://127.0.0.1:9/cat.jpg",
            metadata={"source": "http://127.0.0.1:9/cat.jpg"},
        ),
        Document(
            page_content=str(tmp_path / "gone.jpg"), metadata={"source": str(tmp_path / "gone.jpg")}
        ),
    ]
    store.upsert_vectors(["remote", "gone"], vectors, docs)
    client = TestClient(create_app(store))
    _assert_error(client.get("/api/thumbnails/remote"), 404, "remote_source")
    body = _assert_error(client.get("/api/thumbnails/gone"), 404, "unreadable_source")
    assert "not_found" in body["message"]
    _still_up(client)


def test_image_root_confines_thumbnails(lite0_store: Any, tmp_path: Path) -> None:
    store, _ = lite0_store
    client = TestClient(create_app(store, ServeSettings(image_root=str(tmp_path))))
    record_id = next(iter(store.records()))
    body = _assert_error(client.get(f"/api/thumbnails/{record_id}"), 404, "unreadable_source")
    assert "outside_root" in body["message"]


def test_mounts_in_an_existing_app(lite0_store: Any) -> None:
    from fastapi import FastAPI

    store, _ = lite0_store
    parent = FastAPI()
    parent.mount("/images", create_app(store))
    client = TestClient(parent)
    page = client.get("/images/")
    assert page.status_code == 200 and '<base href="/images/">' in page.text
    assert client.get("/images/api/info").json()["count"] == 40
    assert client.get("/images/static/app.js").status_code == 200


def run_store_kind(store: Any, folder: Path) -> None:
    """The API over a store of another kind: same answers, through the common interface."""
    client = TestClient(create_app(store))
    info = client.get("/api/info").json()
    assert info["count"] == len(store) == 8 and info["supports_text"] is True
    assert info["kind"] == "chroma" and "HNSW" in info["index"]
    hits = client.get("/api/search/text", params={"q": "a photo", "k": 3}).json()["results"]
    assert len(hits) == 3 and all(0.0 <= h["score"] <= 1.0 for h in hits)
    upload = (folder / "chelsea.jpg").read_bytes()
    found = client.post(
        "/api/search/image", params={"k": 2}, files={"file": ("q.jpg", upload, "image/jpeg")}
    ).json()["results"]
    assert found[0]["source"].endswith("chelsea.jpg") and found[0]["score"] > 0.99
    similar = client.get(f"/api/similar/{found[0]['id']}", params={"k": 3}).json()["results"]
    assert len(similar) == 3 and found[0]["id"] not in {h["id"] for h in similar}
    thumb = client.get(f"/api/thumbnails/{found[0]['id']}", params={"size": 128})
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size[0] <= 128
    assert client.get("/api/duplicates").status_code == 200
    _assert_error(client.get("/api/records/nope"), 404, "unknown_id")


def test_embedded_chroma_store(tiny_clip_embeddings: Any, photos_dir: Path, tmp_path: Path) -> None:
    import shutil

    from langchain_image_embeddings.sync import sync_directory
    from langchain_image_embeddings.vectorstores import ChromaImageStore

    folder = tmp_path / "photos"
    shutil.copytree(photos_dir, folder, ignore=shutil.ignore_patterns("copies"))
    store = ChromaImageStore.persistent(tmp_path / "chroma", tiny_clip_embeddings)
    sync_directory(store, folder)
    run_store_kind(store, folder)
    store.close()


def test_a_file_name_that_is_not_utf8_is_shown_escaped_not_a_500(
    tiny_clip_embeddings: Any, tmp_path: Path
) -> None:
    """A stored source named with Latin-1 bytes (``caf\\xe9.png``, a lone surrogate in Python)
    made every search, record and duplicates response a plain-text 500."""
    import os

    from langchain_image_embeddings.vectorstores import FAISSImageStore
    from tests.unit_tests.store_helpers import write_image

    folder = tmp_path / "imgs"
    write_image(folder / "plain.png", seed=1)
    odd = Path(os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.png")))
    write_image(odd, seed=2)
    store = FAISSImageStore.from_images([folder / "plain.png", odd], tiny_clip_embeddings)
    client = TestClient(create_app(store))
    hits = client.get("/api/search/text?q=a%20photo&k=2")
    assert hits.status_code == 200, hits.text
    by_name = {Path(h["source"]).name: h for h in hits.json()["results"]}
    assert set(by_name) == {"plain.png", "caf\\xe9.png"}
    odd_hit = by_name["caf\\xe9.png"]
    assert odd_hit["sources"] == [odd_hit["source"]] and "\\xe9" in odd_hit["metadata"]["source"]
    record = client.get(f"/api/records/{odd_hit['id']}")
    assert record.status_code == 200 and record.json()["source"] == odd_hit["source"]
    thumbnail = client.get(f"/api/thumbnails/{odd_hit['id']}?size=128")
    assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"  # the real file
    duplicates = client.get("/api/duplicates?threshold=0.51")
    assert duplicates.status_code == 200, duplicates.text
    names = {Path(m["source"]).name for g in duplicates.json()["groups"] for m in g["members"]}
    assert names <= {"plain.png", "caf\\xe9.png"}


def test_text_and_api_filters_compare_numbers(client: TestClient, lite0_store: Any) -> None:
    """``width=451`` (a number) matches the stored integer width of chelsea.jpg."""
    _, folder = lite0_store
    with open(folder / "chelsea.jpg", "rb") as fh:
        body = client.post(
            "/api/search/image?k=20&filter=width=451&filter=format=JPEG", files={"file": fh}
        ).json()
    assert body["count"] >= 1
    assert all(h["metadata"]["width"] == 451 for h in body["results"])
    assert body["results"][0]["source"].endswith("chelsea.jpg")


@pytest.mark.parametrize(
    "options",
    [{"max_k": 0}, {"max_upload_bytes": 0}, {"max_upload_pixels": -1}, {"thumbnail_sizes": ()}],
)
def test_settings_that_would_refuse_every_request_are_refused_up_front(
    options: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        ServeSettings(**options)


def test_image_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a directory"):
        ServeSettings(image_root=str(tmp_path / "missing"))
    assert ServeSettings(image_root=str(tmp_path)).image_root == str(tmp_path)


def test_a_loopback_server_refuses_foreign_host_names_dns_rebinding(lite0_store: Any) -> None:
    """A page on attacker.example whose name is rebound to 127.0.0.1 is "same origin" with a
    loopback server in the browser: every response (paths, thumbnails) was readable by it."""
    import socket

    from tests.serve_helpers import live_server

    store, _ = lite0_store
    app = create_app(store)
    with live_server(app) as url:  # a real uvicorn: the ASGI "server" is the socket's address
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        for host, status in [
            ("attacker.example", 400),
            (f"attacker.example:{port}", 400),
            ("127.0.0.1.nip.io", 400),
            (f"127.0.0.1:{port}", 200),
            (f"localhost:{port}", 200),
            ("app.localhost", 200),
        ]:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(f"GET /api/info HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                head = sock.recv(65536).split(b"\r\n", 1)[0]
            assert head.split()[1] == str(status).encode(), (host, head)
    # The same rules in a test client that says it arrived on 127.0.0.1 ...
    local = TestClient(app, base_url="http://127.0.0.1:8000")
    _assert_error(local.get("/", headers={"host": "attacker.example"}), 400, "bad_host")
    assert local.get("/api/info", headers={"host": "[::1]:8000"}).status_code == 200
    # ... not checked on other addresses (served on the network, mounted) unless listed.
    remote = TestClient(app, base_url="http://192.0.2.7:8000")
    assert remote.get("/api/info", headers={"host": "images.example.org"}).status_code == 200
    listed = create_app(store, ServeSettings(allowed_hosts=("images.example.org",)))
    for base in ("http://192.0.2.7", "http://127.0.0.1"):
        client = TestClient(listed, base_url=base)
        assert client.get("/api/info", headers={"host": "images.example.org"}).status_code == 200
        _assert_error(client.get("/api/info", headers={"host": "other.example"}), 400, "bad_host")
    for bad in ("images.example.org", ()):
        with pytest.raises(ValueError, match="tuple of names"):
            ServeSettings(allowed_hosts=bad)  # type: ignore[arg-type]


def test_ids_with_slashes_and_url_characters_are_addressable(
    lite0_embeddings: Any, lite0_store: Any, tmp_path: Path
) -> None:
    """Ids are the caller's (e.g. paths, through ``upsert_vectors``): an id holding '/' was
    a 404 "Not Found" for its record, thumbnail and "more like this"; the record's thumbnail
    URL was not encoded."""
    import numpy as np
    from langchain_core.documents import Document

    from langchain_image_embeddings.vectorstores import FAISSImageStore

    _, folder = lite0_store
    paths = [str(folder / "chelsea.jpg"), str(folder / "coffee.jpg")]
    ids = ["photos/chelsea.jpg", "a?b#c%d/../e"]
    store = FAISSImageStore(lite0_embeddings, tmp_path / "index")
    vectors = np.asarray(lite0_embeddings.embed_images(paths), dtype=np.float32)
    docs = [Document(page_content=p, metadata={"source": p}) for p in paths]
    store.upsert_vectors(ids, vectors, docs)
    client = TestClient(create_app(store))
    for record_id, path in zip(ids, paths, strict=True):
        quoted = urllib.parse.quote(record_id, safe="")
        record = client.get(f"/api/records/{quoted}")
        assert record.status_code == 200, record.text
        assert record.json()["id"] == record_id and record.json()["source"] == path
        thumbnail = client.get(record.json()["thumbnail"])
        assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"
        similar = client.get(f"/api/similar/{quoted}", params={"k": 1}).json()
        assert [h["id"] for h in similar["results"]] == [i for i in ids if i != record_id]
    _assert_error(client.get("/api/records/photos%2Fnope.jpg"), 404, "unknown_id")


def test_uploads_are_decoded_on_two_threads_not_forty(
    client: TestClient, lite0_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 40 KB PNG decodes to 160 MB: decoded on any of the server's 40 worker threads, each
    thread's malloc arena kept its peak (20 uploads at once: +2.7 to 3.5 GB; two threads: +0.6 GB; with the shared decode budget and reduced decodes +0.33 GB, see benchmarks/serve_uploads.py)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import langchain_image_embeddings.images as images

    _, folder = lite0_store
    real = images.load_image
    threads: set[str] = set()
    active = [0, 0]  # now, most at once
    guard = threading.Lock()

    def tracked(*args: Any, **kwargs: Any) -> Any:
        with guard:
            threads.add(threading.current_thread().name)
            active[0] += 1
            active[1] = max(active)
        try:
            time.sleep(0.05)
            return real(*args, **kwargs)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(images, "load_image", tracked)
    photo = _jpeg(folder / "coffee.jpg")

    def upload(_: int) -> int:
        files = {"file": ("q.jpg", photo, "image/jpeg")}
        return int(client.post("/api/search/image?k=1", files=files).status_code)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(upload, range(8))) == [200] * 8
    assert active[1] <= 2 and 1 <= len(threads) <= 2, (active, threads)
    assert all(name.startswith("imgemb-upload") for name in threads), threads


def test_thumbnails_are_made_on_two_threads_not_forty(
    lite0_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 thumbnail misses of 36 M pixel PNGs at once grew the server by 2.4 GB (one malloc
    arena per worker thread); made on two threads: 0.3 GB, and faster."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import langchain_image_embeddings.images as images

    store, _ = lite0_store
    client = TestClient(create_app(store))  # an empty thumbnail cache
    real = images.load_image
    threads: set[str] = set()

    def tracked(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "load_image", tracked)
    ids = list(store.records())[:8]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: client.get(f"/api/thumbnails/{i}").status_code, ids))
    assert codes == [200] * 8
    assert 1 <= len(threads) <= 2 and all(t.startswith("imgemb-thumbnail") for t in threads)
