"""Stores, a live server and a real Chromium for the tests of ``imgemb serve`` (API and
browser). The ``browser`` and ``page`` fixtures are imported by the browser test modules
(one browser per module)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[1] / "docs"
#: axe-core, vendored (MPL-2.0, see tests/vendor/axe-core/LICENSE): no download in CI.
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


def launch_browser() -> Iterator[Any]:
    """A headless Chromium (Debian's ``chromium``, driven by Playwright); a browser test
    module makes it its fixture: ``browser = pytest.fixture(scope="module",
    name="browser")(launch_browser)``."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def watched_page(context: Any) -> tuple[Any, list[str], list[str], list[str]]:
    """A new page of ``context`` with the script errors, 404s and requests outside the app
    it makes collected (for the caller to assert empty)."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith(("http://127.0.0.1:", "data:", "blob:"))
            else None
        ),
    )
    # A 404 in the console of every page load (the browser's own /favicon.ico request, which
    # no "response" event shows) reads as a broken page to whoever opens the console.
    missing: list[str] = []
    page.on("console", lambda m: missing.append(m.text) if " 404 " in m.text else None)
    return page, errors, missing, outside


def desktop_page(browser: Any) -> Iterator[Any]:
    """A desktop page (1280x900) that fails the test on a script error, a 404 or a request
    outside the app (a fixture the same way as :func:`launch_browser`)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page, errors, missing, outside = watched_page(context)
    yield page
    context.close()
    assert not errors, errors
    assert not missing, f"the page asked for something the app does not serve: {missing}"
    assert not outside, f"the page asked for something outside the app: {outside}"


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def wait_results(page: Any, expected: int) -> list[dict[str, Any]]:
    """The cards of the results grid, once ``expected`` are shown, the grid is no longer
    busy and every thumbnail loaded."""
    page.wait_for_function(
        "n => document.querySelectorAll('#results .result').length === n"
        " && document.querySelector('#results').getAttribute('aria-busy') === 'false'",
        arg=expected,
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results .result img')].every("
        "img => img.complete && img.naturalWidth > 0)"
    )
    return cards(page, "#results")


def cards(page: Any, root: str) -> list[dict[str, Any]]:
    return list(
        page.eval_on_selector_all(
            f"{root} .result",
            """cards => cards.map(c => ({
                id: c.dataset.id,
                score: Number(c.querySelector('.score').textContent),
                source: c.querySelector('.source').textContent,
                width: c.querySelector('img').naturalWidth,
                missing: c.querySelector('img').classList.contains('missing'),
            }))""",
        )
    )


#: Built stores, per (model id, photos folder): built once per session, shared read-only.
_STORES: dict[tuple[str, str], Any] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def photo_store(embeddings: Any, photos_dir: Path, root: Path, *, copies: bool = True) -> Any:
    """A FAISS store of the sample photos (and their copies), built once per session."""
    from langchain_image_embeddings.sync import sync_directory
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    key = (embeddings.model_id, f"{photos_dir}:{copies}")
    if key not in _STORES:
        folder = root / "photos"
        if not folder.exists():
            shutil.copytree(photos_dir, folder)
            if not copies:
                shutil.rmtree(folder / "copies")
        store = FAISSImageStore(embeddings, root / "index")
        sync_directory(store, folder)
        store.persist()
        _STORES[key] = (store, folder)
    return _STORES[key]


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 (free port) in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
