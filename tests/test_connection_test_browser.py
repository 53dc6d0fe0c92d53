"""The device check's connection test in real Chromium: good through the relay, failed without it.

The page sends numbered probes over a data channel to an echo peer on the
relay (`connection_test`) and says whether the call will work. Through the
in-process relay on loopback it is `good`; when the relay refuses the test,
or answers but its media path is dead (the echo peer gone before it could
connect: signalling up, nothing gets through), it is `failed`. With TURN only
(`ice_transport_policy: relay`), the probes go through a real coturn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from media.errors import MediaError
from media.relay import Relay
from media.relay_service import SubscriberListener
from signalling.app import make_app
from signalling.config import Settings
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.browser import chromium
from tests.support.coturn_server import CoturnServer
from tests.test_e2e_browser import STEP, expect_state, local_link, open_page

pytestmark = pytest.mark.browser


class BrokenEchoRelay:
    """The in-process relay, but connection tests fail: refused, or answered then cut."""

    def __init__(self, how: str) -> None:
        self.inner = Relay()
        self.how = how

    async def join(
        self,
        room_id: str,
        participant_id: str,
        listener: SubscriberListener,
        info: Mapping[str, str] | None = None,
    ) -> None:
        await self.inner.join(room_id, participant_id, listener, info)

    async def publish(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        return await self.inner.publish(room_id, participant_id, offer_sdp)

    async def prepare(self, room_id: str, participant_id: str, offer_sdp: object) -> str:
        return await self.inner.prepare(room_id, participant_id, offer_sdp)

    async def publish_prepared(self, room_id: str, participant_id: str) -> None:
        await self.inner.publish_prepared(room_id, participant_id)

    async def answer(
        self, room_id: str, participant_id: str, subscription_id: object, answer_sdp: object
    ) -> None:
        await self.inner.answer(room_id, participant_id, subscription_id, answer_sdp)

    async def request_keyframe(
        self, room_id: str, participant_id: str, subscription_id: object
    ) -> None:
        await self.inner.request_keyframe(room_id, participant_id, subscription_id)

    async def leave(self, room_id: str, participant_id: str) -> None:
        await self.inner.leave(room_id, participant_id)

    async def close_room(self, room_id: str) -> None:
        await self.inner.close_room(room_id)

    async def echo(self, room_id: str, offer_sdp: object) -> str:
        if self.how == "refused":
            raise MediaError("media_failed", "The relay is unavailable.")
        answer = await self.inner.echo(room_id, offer_sdp)
        await self.inner.echoes.close()  # its media path dies before anything connects
        return answer

    async def close(self) -> None:
        await self.inner.close()


async def run_test(page: Page) -> str:
    await expect_state(page, "precall")
    button = page.get_by_test_id("connection-test")
    await expect(button).to_be_enabled(timeout=STEP)
    await button.click()
    result = page.get_by_test_id("connection-result")
    await expect(result).to_have_attribute("data-result", "running", timeout=STEP)
    await expect(result).not_to_have_attribute("data-result", "running", timeout=STEP)
    await expect(button).to_be_enabled(timeout=STEP)
    return str(await result.get_attribute("data-result"))


async def test_the_connection_test_says_good_through_the_relay(live_server: LiveServer) -> None:
    booked = await live_server.book()
    async with chromium() as browser:
        context, page = await open_page(
            browser, local_link(live_server, booked["links"]["patient"])
        )
        try:
            assert await run_test(page) == "good"
            result = page.get_by_test_id("connection-result")
            await expect(result).to_have_attribute("data-route", "direct")
            text = await result.inner_text()
            print(text)
            assert "good" in text
            assert "0% lost" in text
            # Still on the device check: nothing of the room changed (no check-in).
            await expect_state(page, "precall")
            assert page.errors == []  # type: ignore[attr-defined]
        finally:
            await context.close()


@pytest.mark.parametrize("how", ["refused", "unreachable"])
async def test_the_connection_test_says_failed_when_the_relay_cannot_be_reached(
    aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings, how: str
) -> None:
    server = LiveServer(
        await aiohttp_server(make_app(settings, relay=BrokenEchoRelay(how)), host="127.0.0.1")
    )
    booked = await server.book()
    async with chromium() as browser:
        context, page = await open_page(browser, local_link(server, booked["links"]["patient"]))
        try:
            assert await run_test(page) == "failed"
            text = await page.get_by_test_id("connection-result").inner_text()
            assert "cannot get through" in text
            # The patient can still check in: the test decides nothing.
            await expect(page.get_by_test_id("check-in")).to_be_enabled(timeout=STEP)
        finally:
            await context.close()


async def test_the_connection_test_goes_through_turn_when_the_call_would(
    aiohttp_server: Callable[..., Awaitable[TestServer]], coturn: CoturnServer
) -> None:
    settings = make_settings(
        turn_urls=(coturn.url,), turn_secret=coturn.secret, ice_transport_policy="relay"
    )
    server = LiveServer(await aiohttp_server(make_app(settings), host="127.0.0.1"))
    booked = await server.book()
    async with chromium() as browser:
        context, page = await open_page(browser, local_link(server, booked["links"]["patient"]))
        try:
            assert await run_test(page) == "good"
            result = page.get_by_test_id("connection-result")
            await expect(result).to_have_attribute("data-route", "turn")
            print(await result.inner_text())
        finally:
            await context.close()
