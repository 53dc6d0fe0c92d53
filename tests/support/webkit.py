"""Safari's engine: Debian's WebKitGTK MiniBrowser under Xvfb, driven over W3C WebDriver.

WebKitWebDriver (package webkit2gtk-driver) starts MiniBrowser in automation
mode with WebKit's mock camera and microphone. The client is a few plain HTTP
calls (the W3C WebDriver protocol) with aiohttp: no Selenium for the handful
of commands the tests use. Debian's build has no RTCPeerConnection, so the
tests check what runs without it (docs/browsers.md).

Only a test marked `browser` may launch it, as for Chromium.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout

from tests.support import browser
from tests.support.polling import eventually
from tests.support.processes import stop_process
from tests.support.redis_server import free_port

WEBDRIVER = os.environ.get("TELECONSULT_WEBKIT_DRIVER", "/usr/bin/WebKitWebDriver")
MINIBROWSER = os.environ.get(
    "TELECONSULT_MINIBROWSER", "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
)
XVFB = os.environ.get("TELECONSULT_XVFB", "/usr/bin/Xvfb")
ARGS = ["--automation", "--enable-mock-capture-devices=true", "--enable-media-stream=true"]
STEP = 20.0
# The W3C element reference key.
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def require_webkit() -> tuple[str, str, str]:
    missing = [
        f"{path} ({package})"
        for path, package in (
            (WEBDRIVER, "webkit2gtk-driver"),
            (MINIBROWSER, "webkit2gtk-driver"),
            (XVFB, "xvfb"),
        )
        if not Path(path).exists()
    ]
    if missing:
        raise RuntimeError(
            f"WebKitGTK not found: {', '.join(missing)}: run `make test` (it apt-get installs "
            "webkit2gtk-driver and xvfb) or set TELECONSULT_WEBKIT_DRIVER, "
            "TELECONSULT_MINIBROWSER, TELECONSULT_XVFB"
        )
    return WEBDRIVER, MINIBROWSER, XVFB


class WebDriverError(AssertionError):
    """A WebDriver command failed: the test fails with WebKit's own message."""


class WebKitPage:
    """One WebDriver session (one MiniBrowser window)."""

    def __init__(self, http: ClientSession, base: str, session_id: str) -> None:
        self._http = http
        self._session = f"{base}/session/{session_id}"

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self._http.request(method, self._session + path, json=body) as response:
            document = await response.json()
        value = document.get("value")
        if response.status != 200:
            error = value.get("message") if isinstance(value, dict) else value
            raise WebDriverError(f"WebDriver {method} {path}: {error}")
        return value

    async def goto(self, url: str) -> None:
        await self._call("POST", "/url", {"url": url})

    async def execute(self, script: str, *args: Any) -> Any:
        """Runs `script` (a function body: `return …`) in the page."""
        return await self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    async def execute_async(self, script: str, *args: Any) -> Any:
        """Runs `script` with a callback as its last argument (`arguments[arguments.length-1]`)."""
        return await self._call("POST", "/execute/async", {"script": script, "args": list(args)})

    async def state(self) -> str:
        return str(await self.execute("return document.body.dataset.state"))

    async def expect_state(self, state: str) -> None:
        async def reached() -> bool:
            return await self.state() == state

        await eventually(reached, timeout=STEP, what=f"body[data-state] == {state!r}")

    async def text(self, testid: str) -> str:
        script = "return document.querySelector(`[data-testid='${arguments[0]}']`).textContent"
        return str(await self.execute(script, testid))

    async def click(self, testid: str) -> None:
        found = await self._call(
            "POST",
            "/element",
            {"using": "css selector", "value": f'[data-testid="{testid}"]'},
        )
        await self._call("POST", f"/element/{found[ELEMENT]}/click", {})


@contextmanager
def xvfb() -> Iterator[str]:
    """A private X display; its number is chosen by Xvfb (-displayfd)."""
    executable = require_webkit()[2]
    read, write = os.pipe()
    process = subprocess.Popen(
        [executable, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield f":{number}"
    finally:
        stop_process(process)


@asynccontextmanager
async def webkit() -> AsyncIterator[WebKitPage]:
    """MiniBrowser with mock capture devices, under its own Xvfb; closed on exit."""
    if not browser.launch_allowed:
        raise RuntimeError("this test launches WebKit: mark it @pytest.mark.browser")
    driver, minibrowser, _ = require_webkit()
    port = free_port()
    with xvfb() as display, tempfile.TemporaryDirectory(prefix="teleconsult-webkit-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "XDG_RUNTIME_DIR": home,
            "DISPLAY": display,
            # No sound server: WebKit's mock microphone needs none.
            "GST_PLUGIN_FEATURE_RANK": "pulsesink:NONE,pulsesrc:NONE",
        }
        process = await asyncio.create_subprocess_exec(
            driver,
            f"--port={port}",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with ClientSession(timeout=ClientTimeout(total=STEP + 10)) as http:
                await _wait_for_driver(http, base)
                capabilities = {
                    "capabilities": {
                        "alwaysMatch": {
                            "browserName": "MiniBrowser",
                            "webkitgtk:browserOptions": {"binary": minibrowser, "args": ARGS},
                        }
                    }
                }
                async with http.post(base + "/session", json=capabilities) as response:
                    document = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"WebKit did not start: {document.get('value')}")
                session_id = document["value"]["sessionId"]
                try:
                    yield WebKitPage(http, base, session_id)
                finally:
                    async with http.delete(f"{base}/session/{session_id}"):
                        pass
        finally:
            await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """WebKitWebDriver closes the MiniBrowser it started when it is terminated."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


async def _wait_for_driver(http: ClientSession, base: str) -> None:
    async def ready() -> bool:
        try:
            async with http.get(base + "/status") as response:
                return response.status == 200
        except OSError:
            return False

    await eventually(ready, timeout=STEP, what="WebKitWebDriver listening")
