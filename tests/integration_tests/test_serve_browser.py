"""``imgemb serve`` end to end in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): a text query (tiny CLIP), an upload (Lite0), "more like this", the
near-duplicates view; assertions on what the page shows. The servers run with uvicorn on
127.0.0.1 (free ports); ``imgemb serve`` itself runs once as a subprocess, stopped by PID.

With ``IMGEMB_WRITE_SCREENSHOT=1`` the upload test writes ``docs/serve.png`` and
``docs/serve-duplicates.png``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve_helpers import (
    DOCS,
    cards,
    desktop_page,
    free_port,
    launch_browser,
    live_server,
    open_page,
    photo_store,
    wait_results,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lite0_url(lite0_embeddings: Any, photos_dir: Path, tmp_path_factory: Any) -> Iterator[str]:
    from langchain_image_embeddings.serve import create_app

    store, _ = photo_store(lite0_embeddings, photos_dir, tmp_path_factory.mktemp("lite0"))
    with live_server(create_app(store)) as url:
        yield url


@pytest.fixture(scope="module")
def clip_url(tiny_clip_embeddings: Any, photos_dir: Path, tmp_path_factory: Any) -> Iterator[str]:
    from langchain_image_embeddings.serve import create_app

    store, _ = photo_store(
        tiny_clip_embeddings, photos_dir, tmp_path_factory.mktemp("clip"), copies=False
    )
    with live_server(create_app(store)) as url:
        yield url


browser = pytest.fixture(scope="module", name="browser")(launch_browser)
page = pytest.fixture(name="page")(desktop_page)
_open = open_page
_results = wait_results
_cards = cards


def _api(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _assert_loaded_and_ordered(cards: list[dict[str, Any]]) -> None:
    assert all(c["width"] > 0 and not c["missing"] for c in cards), cards
    scores = [c["score"] for c in cards]
    assert scores == sorted(scores, reverse=True), scores


def test_text_query_shows_ranked_thumbnails(browser: Any, page: Any, clip_url: str) -> None:
    _open(page, clip_url)
    assert page.locator("#summary dd[data-key=images]").text_content() == "8"
    assert page.locator("#summary dd[data-key='text queries']").text_content() == "yes"
    page.fill("#k", "5")
    page.fill("#q", "a cat on a sofa")
    page.press("#q", "Enter")
    cards = _results(page, 5)
    _assert_loaded_and_ordered(cards)
    assert page.locator("#status").text_content().startswith("5 results for")
    expected = _api(f"{clip_url}api/search/text?q=a+cat+on+a+sofa&k=5")["results"]
    assert [c["id"] for c in cards] == [h["id"] for h in expected]


def test_a_server_with_a_small_max_k_is_searchable_from_the_page(
    browser: Any, page: Any, tiny_clip_embeddings: Any, photos_dir: Path, tmp_path: Path
) -> None:
    """``--max-k 5``: the page's default k (12) is brought down to 5, not refused (bad_k)."""
    from langchain_image_embeddings.serve import ServeSettings, create_app

    store, _ = photo_store(tiny_clip_embeddings, photos_dir, tmp_path, copies=False)
    with live_server(create_app(store, ServeSettings(max_k=5))) as url:
        _open(page, url)
        assert page.locator("#k").input_value() == "5"
        page.fill("#q", "a cat on a sofa")
        page.press("#q", "Enter")
        cards = _results(page, 5)
        assert page.locator("#status").text_content().startswith("5 results for")
        _assert_loaded_and_ordered(cards)


def test_upload_more_like_this_and_duplicates(
    browser: Any, page: Any, lite0_url: str, photos_dir: Path
) -> None:
    _open(page, lite0_url)
    assert page.locator("#summary dd[data-key=images]").text_content() == "40"
    assert page.locator("#text-row").is_hidden()  # image-only model: no text box
    page.fill("#k", "6")
    page.set_input_files("#file", str(photos_dir / "copies/chelsea-crop.jpg"))
    cards = _results(page, 6)
    _assert_loaded_and_ordered(cards)
    assert cards[0]["source"] == "chelsea-crop.jpg" and cards[0]["score"] > 0.99
    assert [c["source"].split("-")[0].split(".")[0] for c in cards[:5]] == ["chelsea"] * 5
    assert page.locator("#preview").evaluate("img => img.naturalWidth") > 0
    if os.environ.get("IMGEMB_WRITE_SCREENSHOT") == "1":
        page.screenshot(path=str(DOCS / "serve.png"), full_page=False)

    # "More like this" on the 6th result (another photo's family): its own family comes back.
    target = cards[5]
    page.locator("#results .result").nth(5).locator("button.more").click()
    page.wait_for_function(
        "src => document.querySelector('#status').textContent.includes('like ' + src)",
        arg=target["source"],
    )
    similar = _results(page, 6)
    _assert_loaded_and_ordered(similar)
    assert target["id"] not in [c["id"] for c in similar]
    family = target["source"].split("-")[0].split(".")[0]
    assert [c["source"].split("-")[0].split(".")[0] for c in similar[:4]] == [family] * 4

    # The near-duplicates view: 8 photos, each with its 4 copies; a group shows 4 members
    # (thumbnails loaded lazily) until "Show all" is pressed.
    page.click("#tab-duplicates")
    page.click("#dup-button")
    # the tab's own first run and the button's run both draw 8 groups: wait for the status
    # of the last one as well, not only for its groups
    page.wait_for_function(
        "() => document.querySelectorAll('#groups .group').length === 8"
        " && document.querySelector('#dup-status').textContent.startsWith('8 groups')"
    )
    assert page.locator("#dup-status").text_content().startswith("8 groups")
    if os.environ.get("IMGEMB_WRITE_SCREENSHOT") == "1":
        page.wait_for_function(
            "() => [...document.querySelectorAll('#groups .group:first-child img')].every("
            "img => img.complete && img.naturalWidth > 0)"
        )
        page.screenshot(path=str(DOCS / "serve-duplicates.png"), full_page=False)
    for i in range(8):
        box = page.locator("#groups .group").nth(i)
        box.scroll_into_view_if_needed()
        assert box.locator(".result").count() == 4
        box.locator("button.expand").click()
        page.wait_for_function(
            "i => [...document.querySelectorAll('#groups .group')[i].querySelectorAll('img')]"
            ".every(img => img.complete && img.naturalWidth > 0)",
            arg=i,
        )
        group = _cards(page, f"#groups .group:nth-child({i + 1})")
        assert len(group) == 5 and all(c["width"] > 0 and not c["missing"] for c in group)
        assert len({c["source"].split("-")[0].split(".")[0] for c in group}) == 1


def test_errors_are_shown_and_the_page_keeps_working(
    browser: Any, page: Any, lite0_url: str, tmp_path: Path, photos_dir: Path
) -> None:
    _open(page, lite0_url)
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not an image")
    page.set_input_files("#file", str(bogus))
    page.wait_for_selector("#status.error")
    assert "not an image" in page.locator("#status").text_content()
    page.set_input_files("#file", str(photos_dir / "coffee.jpg"))
    cards = _results(page, 12)
    assert cards[0]["source"] == "coffee.jpg"


XSS = '"><img src=x onerror=alert(1)><svg onload=alert(2)>'


def test_hostile_names_metadata_and_title_are_shown_as_text(
    browser: Any, lite0_embeddings: Any, photos_dir: Path, tmp_path: Path
) -> None:
    """File names, metadata keys and values, ids, the title and the upload's name holding
    HTML/JS are rendered as text: no script runs, no element is injected."""
    import shutil

    import numpy as np
    from langchain_core.documents import Document

    from langchain_image_embeddings.serve import ServeSettings, create_app
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    hostile = tmp_path / f"{XSS}.jpg"
    shutil.copy(photos_dir / "coffee.jpg", hostile)
    store = FAISSImageStore(lite0_embeddings, tmp_path / "index")
    vectors = np.asarray(lite0_embeddings.embed_images([str(hostile)]), dtype=np.float32)
    meta = {"source": str(hostile), "caption": XSS, "<b onmouseover=alert(3)>k": {"v": XSS}}
    store.upsert_vectors(
        ["<script>alert(4)</script>"], vectors, [Document(page_content=str(hostile), metadata=meta)]
    )
    title = "</title><script>alert(5)</script>"
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        with live_server(create_app(store, ServeSettings(title=title))) as url:
            _open(page, url)
            assert page.title() == title
            upload = {
                "name": f"{XSS}.jpg",
                "mimeType": "image/jpeg",
                "buffer": hostile.read_bytes(),
            }
            page.set_input_files("#file", files=[upload])
            cards = _results(page, 1)
            assert (
                cards[0]["source"] == f"{XSS}.jpg" and cards[0]["id"] == "<script>alert(4)</script>"
            )
            assert XSS in page.locator("#status").text_content()
            page.locator("#results details summary").click()
            assert XSS in page.locator("#results .meta").text_content()
            page.locator("#results .source").hover()
            injected = page.eval_on_selector_all(
                "img[src='x'], svg, script:not([src]), b", "e => e.length"
            )
            assert injected == 0 and dialogs == []
    finally:
        context.close()


def test_imgemb_serve_command_binds_loopback(
    lite0_embeddings: Any, photos_dir: Path, tmp_path_factory: Any
) -> None:
    """The real command: default host 127.0.0.1, answers, stops on SIGINT (by PID)."""
    store, _ = photo_store(lite0_embeddings, photos_dir, tmp_path_factory.mktemp("lite0"))
    spec = f"faiss:{store.path}" if hasattr(store, "path") else None
    if spec is None:
        pytest.fail("the FAISS store has no path attribute")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "langchain_image_embeddings.cli",
            "serve",
            "--store",
            spec,
            "--port",
            str(port),
            "--device",
            "cpu",
            "--log-level",
            "warning",
            "--allowed-host",
            "images.example.org",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        info = None
        while info is None:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"imgemb serve exited with {proc.returncode}: {out[-2000:]}")
            try:
                info = _api(f"http://127.0.0.1:{port}/api/info")
                if info.get("state") == "loading":  # it answers while the model loads
                    info = None
                    time.sleep(0.3)
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("imgemb serve did not answer within 90 s")
                time.sleep(0.3)
        assert info["count"] == 40 and info["kind"] == "faiss"
        assert info["store"] == spec
        # DNS rebinding: the real command refuses a foreign Host on its loopback address.
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/info", headers={"Host": f"attacker.example:{port}"})
        refused = conn.getresponse()
        assert refused.status == 400 and json.loads(refused.read())["error"] == "bad_host"
        # --allowed-host: a reverse proxy's name is answered for, nothing else is
        conn.request("GET", "/api/info", headers={"Host": "images.example.org"})
        proxied = conn.getresponse()
        assert proxied.status == 200 and json.loads(proxied.read())["count"] == 40
        conn.close()
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert f"at http://127.0.0.1:{port}/" in out, out
