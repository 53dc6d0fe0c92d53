"""Headless Debian Firefox (firefox-esr) with fake camera and microphone, over WebDriver BiDi.

Playwright's Firefox is a patched build, not the Firefox patients run, so the
real one is driven by puppeteer-core from a small Node script
(tests/support/firefox_driver.mjs), which this module runs as a subprocess and
talks to in JSON lines. Firefox gathers no ICE candidates on loopback, so it
runs in a network namespace (tests/support/netns.py) and reaches the app on the
namespace's host address, which its prefs treat as a secure context (as
https would be in production: getUserMedia and crypto.subtle need one).

Only a test marked `browser` may launch it, as for Chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count
from pathlib import Path
from typing import Any

from tests.support import browser
from tests.support.netns import Namespace
from tests.support.sound_server import SoundServer

REPO = Path(__file__).resolve().parent.parent.parent
DRIVER = REPO / "tests" / "support" / "firefox_driver.mjs"
PUPPETEER = REPO / "node_modules" / "puppeteer-core"
FIREFOX = os.environ.get("TELECONSULT_FIREFOX", "/usr/bin/firefox-esr")
STEP_MS = 20_000
# Longer than any one command's own timeout: a driver that hangs is a failure, not a hang.
ANSWER_TIMEOUT_S = STEP_MS / 1000 + 15


def prefs(secure_hosts: list[str]) -> dict[str, Any]:
    return {
        # A fake camera (a colour pattern) and microphone (a tone), granted without a prompt.
        "media.navigator.streams.fake": True,
        "media.navigator.permission.disabled": True,
        # Real host candidates, as a patient's Firefox gives once the camera is allowed:
        # with the prompt skipped it would hide them behind mDNS names the relay cannot resolve.
        "media.peerconnection.ice.obfuscate_host_addresses": False,
        # The app's address in the namespace counts as secure, as its https origin would.
        "dom.securecontext.allowlist": ",".join(secure_hosts),
        # Sound without a click, as Chromium's --autoplay-policy flag does for its tests.
        "media.autoplay.default": 0,
        "media.autoplay.blocking_policy": 0,
        # Keep the profile quiet: no updates, telemetry, first-run pages.
        "app.update.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.enabled": False,
        "browser.shell.checkDefaultBrowser": False,
        "browser.startup.homepage_override.mstone": "ignore",
    }


def require_firefox() -> str:
    found = FIREFOX if Path(FIREFOX).exists() else shutil.which("firefox-esr")
    if found is None:
        raise RuntimeError(
            f"Firefox not found at {FIREFOX}: run `make test` (it apt-get installs "
            "firefox-esr) or set TELECONSULT_FIREFOX"
        )
    if not (PUPPETEER / "package.json").exists():
        raise RuntimeError(f"{PUPPETEER} is missing: run `make test` (npm ci) first")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node not found: run `make test` (it apt-get installs nodejs)")
    return found


class FirefoxError(AssertionError):
    """A driver command failed (a wait timed out, an element was missing): the test fails."""


class FirefoxPage:
    """The one page of a driven Firefox; methods mirror the driver's commands."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = count(1)
        self._lock = asyncio.Lock()

    async def _call(self, op: str, **args: Any) -> Any:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        async with self._lock:
            command = {"id": next(self._ids), "op": op, **args}
            self._process.stdin.write((json.dumps(command) + "\n").encode())
            await self._process.stdin.drain()
            line = await asyncio.wait_for(self._process.stdout.readline(), ANSWER_TIMEOUT_S)
        if not line:
            raise FirefoxError(f"the Firefox driver exited during {op}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise FirefoxError(f"Firefox {op} {args}: {answer.get('error')}")
        return answer.get("value")

    async def goto(self, url: str) -> None:
        await self._call("goto", url=url)

    async def click(self, testid: str) -> None:
        await self._call("click", testid=testid, timeout=STEP_MS)

    async def expect_state(self, state: str) -> None:
        await self._call("wait_state", state=state, timeout=STEP_MS)

    async def expect_attribute(self, testid: str, name: str, value: str) -> None:
        await self._call("wait_attribute", testid=testid, name=name, value=value, timeout=STEP_MS)

    async def text(self, testid: str) -> str:
        return str(await self._call("text", testid=testid))

    async def attribute(self, testid: str, name: str) -> str | None:
        value = await self._call("attribute", testid=testid, name=name)
        return None if value is None else str(value)

    async def evaluate(self, function: str) -> Any:
        """The result of `function` (a JavaScript function's source, may be async)."""
        return await self._call("evaluate", expression=function)

    async def wait_for_function(self, function: str) -> None:
        await self._call("wait_function", expression=function, timeout=STEP_MS)

    async def errors(self) -> list[str]:
        errors: list[str] = await self._call("errors")
        return errors


@asynccontextmanager
async def firefox(
    ns: Namespace, sound: SoundServer, secure_hosts: list[str]
) -> AsyncIterator[FirefoxPage]:
    """Firefox inside `ns`, playing sound into `sound`; stopped (and waited for) on exit."""
    if not browser.launch_allowed:
        raise RuntimeError("this test launches Firefox: mark it @pytest.mark.browser")
    executable = require_firefox()
    with tempfile.TemporaryDirectory(prefix="teleconsult-firefox-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "TMPDIR": home,
            "FIREFOX": executable,
            "FIREFOX_PREFS": json.dumps(prefs(secure_hosts)),
            "MOZ_CRASHREPORTER_DISABLE": "1",
            **sound.env,
        }
        process = await asyncio.create_subprocess_exec(
            *ns.command(["node", str(DRIVER)]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), ANSWER_TIMEOUT_S)
            hello = json.loads(line) if line else {"error": "the driver exited"}
            if not hello.get("ready"):
                raise RuntimeError(f"Firefox did not start: {hello.get('error')}")
            page = FirefoxPage(process)
            yield page
            await page._call("close")
        finally:
            await _stop(process)
            # Whatever still runs in the namespace was started here: nothing is left behind.
            ns.kill_all()


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None and not process.stdin.is_closing():
        process.stdin.close()  # The driver closes Firefox when its input ends.
    try:
        await asyncio.wait_for(process.wait(), 10)
        return
    except TimeoutError:
        pass
    # On SIGTERM puppeteer still closes the Firefox it started (its own process group).
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 5)
    except TimeoutError:
        process.kill()
        await process.wait()
