"""Headless Debian Chromium with fake camera and microphone, driven by Playwright.

Only a test marked `browser` may launch it (tests/conftest.py says which test
is running), so that `pytest -m "not browser"` really leaves Chromium out.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = os.environ.get("TELECONSULT_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


# False while a test without the `browser` marker runs; set by tests/conftest.py.
launch_allowed = True


def require_chromium() -> str:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM}: run `make test` (it apt-get installs "
            "chromium) or set TELECONSULT_CHROMIUM"
        )
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


@asynccontextmanager
async def chromium(extra_flags: Sequence[str] = (), wrapper: str = "") -> AsyncIterator[Browser]:
    """`wrapper`: an executable that starts Chromium (`require_chromium()`) with its arguments,
    e.g. inside a network namespace (tests/test_degraded_network.py)."""
    if not launch_allowed:
        raise RuntimeError("this test launches Chromium: mark it @pytest.mark.browser")
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=wrapper or executable,
            args=[*FLAGS, *extra_flags],
            headless=True,
        )
        try:
            yield browser
        finally:
            await browser.close()
