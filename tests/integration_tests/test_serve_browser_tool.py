"""The search page as a tool, in a real headless Chromium (Debian's ``chromium``, Playwright):
state in the URL (round trip, back/forward, reload), one query model (a stale response never
wins, k and filter changes re-run the last query), keyboard-only upload and the ARIA tab
pattern, the phone layout, in-browser downscaling of big photos, the near-duplicates
workflow (paging, keeper, export, removal behind the write flag), result cards (lightbox,
original, export, browse) and an axe-core scan. One browser and two servers per module;
stores of 8-40 images.

With ``IMGEMB_WRITE_SCREENSHOT=1`` the phone test writes ``docs/serve-phone.png`` (and
``test_serve_browser.py`` ``docs/serve.png`` and ``docs/serve-duplicates.png``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve_helpers import (
    AXE,
    DOCS,
    desktop_page,
    launch_browser,
    live_server,
    open_page,
    photo_store,
    wait_results,
    watched_page,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

browser = pytest.fixture(scope="module", name="browser")(launch_browser)
page = pytest.fixture(name="page")(desktop_page)


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


def _api(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _query(page: Any) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)


def _status(page: Any) -> str:
    return str(page.locator("#status").text_content())


def test_the_url_holds_the_search_back_forward_and_reload_restore_it(
    page: Any, clip_url: str
) -> None:
    open_page(page, clip_url)
    page.fill("#k", "5")
    page.fill("#q", "a cat on a sofa")
    page.press("#q", "Enter")
    first = wait_results(page, 5)
    assert _query(page) == {"q": ["a cat on a sofa"], "k": ["5"]}
    assert page.locator("#chip-text").text_content() == "text: “a cat on a sofa”"

    # "More like this": a new history entry; focus goes to the status line, not <body>
    target = first[1]
    page.locator("#results .result").nth(1).locator("button.more").click()
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('like')")
    similar = wait_results(page, 5)
    assert _query(page) == {"similar": [target["id"]], "k": ["5"]}
    assert page.evaluate("document.activeElement.id") == "status"
    assert target["id"] not in [c["id"] for c in similar]

    page.go_back()
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('for “a cat')"
    )
    assert [c["id"] for c in wait_results(page, 5)] == [c["id"] for c in first]
    assert page.locator("#q").input_value() == "a cat on a sofa"

    page.go_forward()
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('like ')")
    assert [c["id"] for c in wait_results(page, 5)] == [c["id"] for c in similar]

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert [c["id"] for c in wait_results(page, 5)] == [c["id"] for c in similar]
    assert page.locator("#k").input_value() == "5"

    # a shared link opens the same search; the clear button empties it (and the URL)
    page.goto(f"{clip_url}?q=a+red+rocket&k=3")
    page.wait_for_selector("body[data-ready=true]")
    expected = _api(f"{clip_url}api/search/text?q=a+red+rocket&k=3")["results"]
    assert [c["id"] for c in wait_results(page, 3)] == [h["id"] for h in expected]
    page.click("#clear")
    page.wait_for_function("() => document.querySelectorAll('#results .result').length === 0")
    assert _query(page) == {"k": ["3"]} and page.locator("#query-bar").is_hidden()
    page.go_back()
    wait_results(page, 3)

    # the near-duplicates view is a URL too (#duplicates is read as a link to it)
    page.goto(f"{clip_url}#duplicates")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#tab-duplicates").get_attribute("aria-selected") == "true"
    assert page.locator("#view-duplicates").is_visible()
    assert _query(page)["view"] == ["duplicates"]


def test_an_older_response_never_overwrites_a_newer_one(page: Any, clip_url: str) -> None:
    """The first search's response is held back until the second one is shown: the page
    still shows the second search when the first one finally answers."""
    held: list[Any] = []

    def hold_slow(route: Any) -> None:
        if "q=slow" in route.request.url:
            held.append(route)
        else:
            route.continue_()

    open_page(page, clip_url)
    page.route("**/api/search/text*", hold_slow)
    page.fill("#k", "4")
    page.fill("#q", "slow")
    page.press("#q", "Enter")
    page.wait_for_function(
        "() => document.querySelector('#results').getAttribute('aria-busy') === 'true'"
    )
    assert page.locator("#status").text_content() == "searching…"
    page.fill("#q", "fast")
    page.press("#q", "Enter")
    fast = wait_results(page, 4)
    assert len(held) == 1
    with contextlib.suppress(Exception):  # the page aborted it: the route may be gone
        held[0].continue_()
    page.wait_for_timeout(500)  # let a late response land, if it were to be shown
    assert "for “fast”" in _status(page)
    assert [c["id"] for c in wait_results(page, 4)] == [c["id"] for c in fast]
    assert page.locator("#chip-text").text_content() == "text: “fast”"


def test_k_and_filter_changes_rerun_the_last_query(
    page: Any, lite0_url: str, photos_dir: Path
) -> None:
    open_page(page, lite0_url)
    page.fill("#k", "6")
    page.set_input_files("#file", str(photos_dir / "copies/chelsea-crop.jpg"))
    wait_results(page, 6)
    assert "like chelsea-crop.jpg" in _status(page)
    assert page.locator("#share-note").is_visible()  # an upload cannot be put in a link
    assert "q" not in _query(page) and "similar" not in _query(page)
    page.fill("#k", "3")
    page.press("#k", "Tab")  # a change of k re-runs the image query
    cards = wait_results(page, 3)
    assert "3 results like chelsea-crop.jpg" in _status(page)
    assert cards[0]["source"] == "chelsea-crop.jpg"
    # "More like this", then a filter: the similar query is re-run with the filter
    page.locator("#results .result").nth(1).locator("button.more").click()
    wait_results(page, 3)
    page.fill("#filters", "width=451")
    page.press("#filters", "Enter")
    page.wait_for_function(
        "() => new URLSearchParams(location.search).get('filter') === 'width=451'"
    )
    page.wait_for_function(
        "() => document.querySelector('#results').getAttribute('aria-busy') === 'false'"
    )
    ids = [c["id"] for c in wait_results(page, len(page.locator("#results .result").all()))]
    assert ids, "the filtered search found nothing"
    for record_id in ids:
        record = _api(f"{lite0_url}api/records/{urllib.parse.quote(record_id, safe='')}")
        assert record["metadata"]["width"] == 451
    assert "like " in _status(page) and _query(page)["similar"]


def test_keyboard_only_upload_and_tabs(page: Any, lite0_url: str, photos_dir: Path) -> None:
    open_page(page, lite0_url)
    for _ in range(40):  # Tab through the page until the "choose an image" button
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "choose":
            break
    assert page.evaluate("document.activeElement.id") == "choose"
    assert page.locator("#choose").get_attribute("type") == "button"
    # Enter on the focused button (the locator keeps the focus there until the key is sent,
    # so nothing rendered meanwhile can take it)
    with page.expect_file_chooser() as chooser:
        page.locator("#choose").press("Enter")
    chooser.value.set_files(str(photos_dir / "coffee.jpg"))
    cards = wait_results(page, 12)
    assert cards[0]["source"] == "coffee.jpg"

    # the ARIA tab pattern: one tab stop, arrows move and select, panels are labelled
    page.focus("#tab-search")
    assert page.get_attribute("#tab-duplicates", "tabindex") == "-1"
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-duplicates"
    assert page.get_attribute("#tab-duplicates", "aria-selected") == "true"
    assert page.get_attribute("#tab-duplicates", "tabindex") == "0"
    assert (
        page.locator("#view-duplicates").is_visible() and page.locator("#view-search").is_hidden()
    )
    assert page.get_attribute("#view-duplicates", "aria-labelledby") == "tab-duplicates"
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.id") == "tab-search"
    assert page.locator("#view-search").is_visible()
    # every "More like this" button has its own accessible name
    names = page.eval_on_selector_all(
        "#results button.more", "bs => bs.map(b => b.getAttribute('aria-label'))"
    )
    assert len(set(names)) == len(names) == 12


def test_a_photo_over_the_pixel_limit_is_reduced_in_the_browser(
    browser: Any, lite0_embeddings: Any, photos_dir: Path, tmp_path_factory: Any
) -> None:
    from langchain_image_embeddings.serve import ServeSettings, create_app

    store, _ = photo_store(lite0_embeddings, photos_dir, tmp_path_factory.mktemp("lite0"))
    context = browser.new_context()
    page, errors, _, _ = watched_page(context)
    try:
        with live_server(create_app(store, ServeSettings(max_upload_pixels=200_000))) as url:
            open_page(page, url)
            page.set_input_files("#file", str(photos_dir / "astronaut.jpg"))  # 512x512
            cards = wait_results(page, 12)
            assert "reduced from 512\u00d7512" in _status(page)
            assert cards[0]["source"].startswith("astronaut")
            # the server itself says what to do, in words, without option names or raw bytes
            import requests

            with open(photos_dir / "astronaut.jpg", "rb") as f:
                answer = requests.post(f"{url}api/search/image", files={"file": f}, timeout=30)
            message = answer.json()["message"]
            assert answer.status_code == 413 and "0.2 million pixels" in message
            assert "ImageLoadOptions" not in message and "Resize it" in message
    finally:
        context.close()
    assert not errors, errors


def test_phone_layout_two_columns_big_tap_targets_no_horizontal_scroll(
    browser: Any, lite0_url: str, photos_dir: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
    )
    page, errors, missing, _ = watched_page(context)
    try:
        open_page(page, lite0_url)
        page.fill("#k", "6")
        page.set_input_files("#file", str(photos_dir / "copies/chelsea-crop.jpg"))
        wait_results(page, 6)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        lefts = page.eval_on_selector_all(
            "#results .result",
            "cs => [...new Set(cs.map(c => Math.round(c.getBoundingClientRect().left)))]",
        )
        assert len(lefts) == 2, lefts
        small = page.eval_on_selector_all(
            "button, input:not([type=file]), select, summary, a[href]",
            """els => els.filter(e => e.offsetParent !== null).map(e => {
                const r = e.getBoundingClientRect();
                return [e.id || e.className || e.tagName, Math.round(r.width), Math.round(r.height)];
            }).filter(([, w, h]) => w < 44 || h < 44)""",
        )
        assert small == [], small
        fonts = page.eval_on_selector_all(
            "input:not([type=file]), select", "els => els.map(e => getComputedStyle(e).fontSize)"
        )
        assert set(fonts) == {"16px"}, fonts
        # srcset: a half-width card at 3x picks the 512 px thumbnail, not a stretched 256
        current = page.eval_on_selector("#results .result img", "img => img.currentSrc")
        assert "size=512" in current, current
        if os.environ.get("IMGEMB_WRITE_SCREENSHOT") == "1":
            page.evaluate("document.querySelector('#status').scrollIntoView()")
            page.screenshot(path=str(DOCS / "serve-phone.png"), full_page=False)
    finally:
        context.close()
    assert not errors and not missing, (errors, missing)


def _duplicate_store(embeddings: Any, root: Path, groups: int) -> Any:
    """``groups`` pairs of near-identical vectors over real PNG files: in each pair a large
    image (the keeper) and a small one."""
    import numpy as np
    from langchain_core.documents import Document
    from PIL import Image

    from langchain_image_embeddings.vectorstores import FAISSImageStore

    rng = np.random.default_rng(0)
    store = FAISSImageStore(embeddings, root / "index")
    ids, vectors, docs = [], [], []
    for g in range(groups):
        base = rng.normal(size=1280)  # EfficientNet-Lite0's dimension
        for kind, size in (("large", (64, 48)), ("small", (32, 24))):
            path = root / f"g{g:02d}-{kind}.png"
            Image.new("RGB", size, (g * 20 % 256, 80, 160)).save(path)
            meta = {
                "source": str(path),
                "width": size[0],
                "height": size[1],
                "bytes": path.stat().st_size,
                "format": "PNG",
            }
            ids.append(f"g{g:02d}-{kind}")
            vectors.append(base + rng.normal(scale=0.01, size=base.shape))
            docs.append(Document(page_content=str(path), metadata=meta))
    store.upsert_vectors(ids, np.asarray(vectors, np.float32), docs)
    store.persist()
    return store


def test_duplicates_paging_keeper_and_export(
    page: Any, lite0_embeddings: Any, tmp_path: Path
) -> None:
    from langchain_image_embeddings.serve import create_app

    store = _duplicate_store(lite0_embeddings, tmp_path, 12)
    with live_server(create_app(store)) as url:
        open_page(page, f"{url}?view=duplicates&threshold=0.9")
        page.wait_for_function("() => document.querySelectorAll('#groups .group').length === 10")
        assert "12 groups" in str(page.locator("#dup-status").text_content())
        assert page.locator("#dup-page").text_content() == "page 1 of 2"
        assert page.locator("#dup-remove").is_hidden()  # a read-only server
        # images load lazily; the suggested keeper is the large image, the small one is ticked
        assert set(page.eval_on_selector_all("#groups img", "is => is.map(i => i.loading)")) == {
            "lazy"
        }
        for box in page.locator("#groups .group").all():
            keeper = box.locator(".result", has=page.locator(".keeper"))
            assert keeper.count() == 1 and "64\u00d748" in str(
                keeper.locator(".facts").text_content()
            )
            assert not keeper.locator("input.remove").is_checked()
            other = box.locator(".result", has_not=page.locator(".keeper"))
            assert other.locator("input.remove").is_checked()
        page.click("#dup-next")
        page.wait_for_function("() => document.querySelectorAll('#groups .group').length === 2")
        assert _query(page)["page"] == ["2"]
        assert page.locator("#groups .group h3").first.text_content().startswith("Group 11")
        # keep both images of group 12: untick its small one
        last = (
            page.locator("#groups .group")
            .nth(1)
            .locator(".result", has_not=page.locator(".keeper"))
        )
        kept = last.get_attribute("data-id")
        last.locator("input.remove").uncheck()
        with page.expect_download() as download:
            page.click("#dup-export-csv")
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert len(rows) == 11 and kept not in {r["id"] for r in rows}
        assert all(
            r["id"].endswith("-small") and r["keeper_id"] == r["id"].replace("small", "large")
            for r in rows
        )
        with page.expect_download() as download:
            page.click("#dup-export-json")
        plan = json.loads(Path(download.value.path()).read_text())
        assert [r["id"] for r in plan["remove"]] == [r["id"] for r in rows]
        # every group is reachable (page 2 came from the server's offset), back goes to page 1
        page.go_back()
        page.wait_for_function("() => document.querySelectorAll('#groups .group').length === 10")
        assert store.existing_ids([r["id"] for r in rows]) == {
            r["id"] for r in rows
        }  # nothing removed


def test_removal_from_the_index_needs_the_write_flag_and_keeps_files(
    page: Any, lite0_embeddings: Any, tmp_path: Path
) -> None:
    from langchain_image_embeddings.serve import ServeSettings, create_app

    store = _duplicate_store(lite0_embeddings, tmp_path, 3)
    with live_server(create_app(store, ServeSettings(allow_delete=True))) as url:
        page.on("dialog", lambda d: d.accept())
        open_page(page, f"{url}?view=duplicates&threshold=0.9")
        page.wait_for_function("() => document.querySelectorAll('#groups .group').length === 3")
        page.click("#dup-remove")
        page.wait_for_function(
            "() => document.querySelector('#dup-status').textContent.startsWith('Removed 3')"
        )
        assert len(store) == 3 and store.existing_ids(["g00-small"]) == set()
        assert (tmp_path / "g00-small.png").exists()  # the file stays on disk
        assert page.locator("#summary dd[data-key=images]").text_content() == "3"


def test_cards_lightbox_original_export_and_browse(
    page: Any, lite0_url: str, photos_dir: Path
) -> None:
    open_page(page, lite0_url)
    page.click("#browse-recent")
    cards = wait_results(page, 12)
    assert _query(page)["browse"] == ["recent"] and "of 40" in _status(page)
    assert page.locator("#browse-page").text_content() == "page 1 of 4"
    page.click("#browse-next")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.startsWith('images 13\u201324')"
    )
    assert _query(page)["page"] == ["2"]
    second = wait_results(page, 12)
    assert not {c["id"] for c in cards} & {c["id"] for c in second}
    # the lightbox: a larger thumbnail, readable metadata, the original file
    page.locator("#results .result").first.locator("button.open").click()
    assert page.locator("#lightbox").is_visible()
    page.wait_for_function("() => document.querySelector('#lb-image').naturalWidth > 256")
    meta = str(page.locator("#lb-meta").text_content())
    assert " UTC" in meta and ("KB" in meta or "MB" in meta)
    href = page.locator("#lb-original").get_attribute("href")
    source = Path(str(page.locator("#lb-path").text_content()).splitlines()[0])
    with urllib.request.urlopen(f"{lite0_url}{href}", timeout=30) as response:
        assert response.read() == source.read_bytes()
    page.keyboard.press("Escape")
    assert page.locator("#lightbox").is_hidden()
    assert page.evaluate("document.activeElement.classList.contains('open')")  # focus returns
    # export of the results shown
    with page.expect_download() as download:
        page.click("#export-json")
    exported = json.loads(Path(download.value.path()).read_text())
    assert [h["id"] for h in exported["results"]] == [c["id"] for c in second]
    # the filter helper lists keys and values; a value becomes a filter, matched ignoring case
    page.click("#filter-help summary")
    page.locator("button.sample", has_text="format=JPEG").click()
    page.wait_for_function(
        "() => new URLSearchParams(location.search).get('filter') === 'format=JPEG'"
    )
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('of 40')")
    page.fill("#filters", "format=jpeg")
    page.press("#filters", "Enter")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('of 40')")


def test_an_empty_store_says_how_to_fill_it(
    page: Any, lite0_embeddings: Any, tmp_path: Path
) -> None:
    from langchain_image_embeddings.serve import create_app
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    store = FAISSImageStore(lite0_embeddings, tmp_path / "index")
    with live_server(create_app(store)) as url:
        open_page(page, url)
        assert page.locator("#empty-store").is_visible()
        assert "imgemb index PHOTOS --store" in str(page.locator("#empty-store").text_content())


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "nodes": [(n["target"], n["failureSummary"]) for n in v["nodes"]][:3],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_axe_finds_no_serious_or_critical_problems(
    browser: Any, lite0_url: str, photos_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page, errors, _, _ = watched_page(context)
    try:
        open_page(page, lite0_url)
        page.fill("#k", "4")
        page.set_input_files("#file", str(photos_dir / "copies/chelsea-crop.jpg"))
        wait_results(page, 4)
        page.click("#filter-help summary")
        assert _axe(page) == []
        page.goto(f"{lite0_url}?view=duplicates&threshold=0.9")
        page.wait_for_function("() => document.querySelectorAll('#groups .group').length === 8")
        assert _axe(page) == []
        page.goto(lite0_url)
        page.wait_for_selector("body[data-ready=true]")
        page.click("#browse-random")
        wait_results(page, 12)
        page.locator("#results .result").first.locator("button.open").click()
        assert _axe(page) == []
    finally:
        context.close()
    assert not errors, errors


def test_a_pdf_page_card_says_which_page_of_which_file(
    page: Any, lite0_embeddings: Any, photos_dir: Path, tmp_path: Path
) -> None:
    import numpy as np
    from langchain_core.documents import Document

    from langchain_image_embeddings.serve import create_app
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    store = FAISSImageStore(lite0_embeddings, tmp_path / "index")
    image = str(photos_dir / "coffee.jpg")  # stands in for the rendered page (a thumbnail)
    meta = {"source": image, "document": "/docs/report.pdf", "page": 3, "kind": "page"}
    vector = np.ones((1, 1280), np.float32)
    store.upsert_vectors(["p3"], vector, [Document(page_content=image, metadata=meta)])
    with live_server(create_app(store)) as url:
        open_page(page, f"{url}?browse=recent")
        wait_results(page, 1)
        assert page.locator("#results .source").text_content() == "page 3 of report.pdf"
