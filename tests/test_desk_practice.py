"""The desk names the practice of the day's appointments, over the socket and in its header."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio
from playwright.async_api import expect

from signalling import tokens
from tests.conftest import LiveServer
from tests.support import TOKEN_SECRET, appointment_data
from tests.support.browser import chromium

PRACTICE = {"name": "Cabinet du Parc", "phone": "+33 1 23 45 67 89"}


def desk_token() -> str:
    now = datetime.now(UTC)
    return tokens.mint_desk(
        TOKEN_SECRET,
        practitioner_id="prac-1",
        not_before=now - timedelta(minutes=1),
        expires_at=now + timedelta(hours=1),
    )


async def book_with_practice(server: LiveServer) -> None:
    data = {**appointment_data(), "practice": PRACTICE}
    status, _ = await server.send("appointment.created", data)
    assert status == 201


async def test_the_desk_document_carries_the_practice(live_server: LiveServer) -> None:
    await book_with_practice(live_server)
    desk = socketio.AsyncClient()
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    desk.on("desk", received.put_nowait, namespace="/desk")
    await desk.connect(
        live_server.base_url,
        auth={"token": desk_token()},
        namespaces=["/desk"],
        transports=["websocket"],
    )
    try:
        document = await asyncio.wait_for(received.get(), 10)
    finally:
        await desk.disconnect()
    assert document["practice"] == PRACTICE
    assert len(document["rows"]) == 1


@pytest.mark.browser
async def test_the_desk_header_names_the_practice(live_server: LiveServer) -> None:
    await book_with_practice(live_server)
    async with chromium() as browser:
        page = await (await browser.new_context(locale="fr-FR")).new_page()
        await page.goto(live_server.base_url + "/d#" + desk_token())
        await expect(page.get_by_test_id("desk-row")).to_have_count(1, timeout=20_000)
        await expect(page.get_by_test_id("practice-name")).to_have_text("Cabinet du Parc")
