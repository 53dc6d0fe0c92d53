"""TURN logins per person and per room window, against a real coturn and the real app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestServer
from aioice import stun

from rooms.appointment import JoinWindowPolicy
from signalling.app import make_app
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.coturn_server import TEST_CONFIG, CoturnServer
from tests.support.polling import eventually
from tests.support.synthetic import SyntheticParticipant
from tests.test_turn_coturn import allocation, refusal_code
from turn.credentials import TurnCredentials, issue, person_login_id


async def turn_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], coturn: CoturnServer, **settings: Any
) -> LiveServer:
    app = make_app(make_settings(turn_urls=(coturn.url,), turn_secret=coturn.secret, **settings))
    return LiveServer(await aiohttp_server(app, host="127.0.0.1"))


def turn_login(session: dict[str, Any]) -> TurnCredentials:
    [server] = [s for s in session["ice_servers"] if "username" in s]
    expiry = datetime.fromtimestamp(int(server["username"].split(":")[0]), UTC)
    return TurnCredentials(server["username"], server["credential"], expiry)


async def test_one_person_over_five_connections_uses_one_turn_username(
    aiohttp_server: Callable[..., Awaitable[TestServer]], coturn: CoturnServer
) -> None:
    server = await turn_server(aiohttp_server, coturn)
    room = await server.book()
    usernames = set()
    logins = []
    for number in range(5):
        patient = SyntheticParticipant(server.base_url, room["links"]["patient"], f"tab {number}")
        try:
            logins.append(turn_login(await patient.connect()))
        finally:
            await patient.close()
        usernames.add(logins[-1].username)
    assert len(usernames) == 1
    practitioner = SyntheticParticipant(server.base_url, room["links"]["practitioner"], "doctor")
    try:
        assert turn_login(await practitioner.connect()).username not in usernames
    finally:
        await practitioner.close()
    # The login is good with coturn, and expires when the room's window closes.
    async with allocation(coturn, logins[0]) as (turn, _):
        assert turn.get_extra_info("sockname")
    closes_at = datetime.fromisoformat(room["closes_at"])
    assert logins[0].expires_at == closes_at.replace(microsecond=0)


async def test_coturn_counts_the_quota_per_person_whatever_the_expiry() -> None:
    # Two connections of one person minted at different times differ in their expiry
    # part only: coturn's user-quota must count them together.
    server = CoturnServer(TEST_CONFIG, "--user-quota=2")
    server.start()
    now = datetime.now(UTC)
    person = person_login_id("k" * 32, "room-one", "patient", "pat-1")
    early = issue(server.secret, person, now, timedelta(minutes=10))
    later = issue(server.secret, person, now, timedelta(minutes=11))
    someone_else = issue(
        server.secret,
        person_login_id("k" * 32, "room-one", "guest", "g"),
        now,
        timedelta(minutes=10),
    )
    assert early.username != later.username
    try:
        async with AsyncExitStack() as held:
            await held.enter_async_context(allocation(server, early))
            await held.enter_async_context(allocation(server, later))
            assert await refusal_code(server, later) == 486  # Allocation Quota Reached
            assert await refusal_code(server, early) == 486
            await held.enter_async_context(allocation(server, someone_else))
    finally:
        server.close()


async def test_a_login_minted_near_the_window_close_is_refused_after_it(
    aiohttp_server: Callable[..., Awaitable[TestServer]], coturn: CoturnServer
) -> None:
    # A room whose window closes a few seconds from now, the TTL far longer.
    policy = JoinWindowPolicy(opens_before=timedelta(minutes=15), closes_after=timedelta(seconds=3))
    server = await turn_server(aiohttp_server, coturn, join_window=policy)
    room = await server.book(starts_in=timedelta(minutes=-1), duration=timedelta(minutes=1))
    closes_at = datetime.fromisoformat(room["closes_at"])
    assert closes_at - datetime.now(UTC) < timedelta(seconds=5)
    patient = SyntheticParticipant(server.base_url, room["links"]["patient"], "patient")
    try:
        login = turn_login(await patient.connect())
    finally:
        await patient.close()
    assert login.expires_at == closes_at.replace(microsecond=0)
    async with allocation(coturn, login):
        pass

    async def refused_after_the_close() -> bool:
        assert datetime.now(UTC) >= closes_at
        try:
            async with allocation(coturn, login):
                return False
        except stun.TransactionFailed as refused:
            return bool(refused.response.attributes["ERROR-CODE"][0] == 401)

    await eventually(refused_after_the_close, timeout=15, interval=0.5)
