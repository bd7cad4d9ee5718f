"""Real Chromium for the browser tests (Playwright for Python driving Debian's chromium) and a console
served by uvicorn in a thread.

Playwright's own browser download does not work here, so the tests launch the system chromium by
path. Without it a test skips (apt-get install chromium); under CI=true it fails instead, so CI
cannot pass without having run it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.embedded import free_port

CHROMIUM = os.environ.get("ANTIFRAUD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--disable-extensions", "--no-first-run", "--disable-sync",
                 "--disable-component-update", "--disable-default-apps"]


def need(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI=true: the browser test must run)")
    pytest.skip(why)


@contextmanager
def chromium() -> Iterator:
    need(Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM}: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - it is in the test extras
        need(False, "playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@contextmanager
def serving(app) -> Iterator[str]:
    """The app on a free port of 127.0.0.1 until the block ends; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "console did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
