"""The join token leaves the address bar once read; a reload still joins the same place."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.conftest import LiveServer
from tests.support.browser import chromium

STEP = 20_000


@pytest.mark.browser
async def test_the_token_leaves_the_address_bar_and_a_reload_keeps_the_place(
    live_server: LiveServer,
) -> None:
    room = await live_server.book()
    link = room["links"]["patient"]
    path = "/c/" + link.split("/c/", 1)[1].split("#", 1)[0]
    token = link.split("#", 1)[1]
    async with chromium() as browser:
        context = await browser.new_context(locale="en-US")
        page = await context.new_page()
        page.set_default_timeout(STEP)
        await page.goto(live_server.base_url + path + "#" + token)
        check_in = page.get_by_test_id("check-in")
        await expect(check_in).to_be_enabled()
        assert page.url == live_server.base_url + path, "the token is still in the address bar"
        assert token not in await page.evaluate("document.location.href")
        await check_in.click()
        await expect(page.locator("body")).to_have_attribute("data-state", "waiting")

        await page.reload()
        # Back in the waiting room, from the token the tab kept (and its resume secret).
        await expect(page.locator("body")).to_have_attribute("data-state", "waiting")
        assert page.url == live_server.base_url + path
        await context.close()
