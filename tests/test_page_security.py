"""The page's Content Security Policy: its own origin only, WebSockets included."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect

from signalling.pages import content_security_policy
from tests.conftest import LiveServer
from tests.support.browser import chromium


def directive(policy: str, name: str) -> list[str]:
    for part in policy.split(";"):
        words = part.split()
        if words and words[0] == name:
            return words[1:]
    raise AssertionError(f"{name} missing from {policy!r}")


async def test_websockets_may_reach_the_pages_own_host_only(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/c/room-0001", headers={"Host": "visio.example.org"})
    policy = response.headers["Content-Security-Policy"]
    sources = directive(policy, "connect-src")
    assert sources == ["'self'", "ws://visio.example.org", "wss://visio.example.org"]
    assert "ws:" not in sources
    assert "wss:" not in sources
    assert directive(policy, "script-src") == ["'self'"]


@pytest.mark.parametrize(
    "host", ["evil.example; script-src *", "a b", "x\ty", "[::1]:8080", "127.0.0.1:8080"]
)
def test_a_hostile_host_header_cannot_add_sources(host: str) -> None:
    sources = directive(content_security_policy(host), "connect-src")
    assert all(";" not in source and "*" not in source for source in sources)
    assert sources[0] == "'self'"
    assert len(sources) in (1, 3)
    if len(sources) == 3:
        assert sources[1:] == [f"ws://{host}", f"wss://{host}"]


@pytest.mark.browser
async def test_the_page_connects_under_its_policy_and_cannot_reach_another_host(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    link = room["links"]["patient"]
    url = live_server.base_url + "/c/" + link.split("/c/", 1)[1]
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda msg: (
                violations.append(msg.text) if "Content Security Policy" in msg.text else None
            ),
        )
        await page.goto(url)
        # The appointment is shown from the server's `session`: Socket.IO connected.
        await expect(page.get_by_test_id("connecting-note")).to_be_hidden(timeout=20_000)
        await expect(page.get_by_test_id("appointment-time")).not_to_be_empty(timeout=20_000)
        assert violations == []
        # Another host's WebSocket (loopback, nothing listens): the policy must stop it.
        blocked = await page.evaluate(
            """() => new Promise(resolve => {
                let violated = null;
                document.addEventListener('securitypolicyviolation',
                    e => { violated = e.effectiveDirective; });
                let socket;
                try { socket = new WebSocket('ws://127.0.0.2:9/'); }
                catch (e) { resolve('thrown'); return; }
                // The violation is reported before the socket fails; an allowed
                // socket fails too (nothing listens) but with no violation.
                const settle = () => setTimeout(() => resolve(violated || 'allowed'), 50);
                socket.onerror = settle;
                socket.onclose = settle;
                setTimeout(settle, 3000);
            })"""
        )
        assert blocked in ("connect-src", "thrown")
        await context.close()
