"""`teleconsult serve` stops promptly on SIGTERM, open sockets and all (Docker gives 10 s)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession

from tests.support import (
    TOKEN_SECRET,
    WEBHOOK_SECRET,
    appointment_data,
    booking_body,
    signed_headers,
)
from tests.support.polling import eventually
from tests.support.redis_server import free_port
from tests.support.synthetic import SyntheticParticipant

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
async def test_sigterm_with_sockets_open_stops_serve_within_5_s() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    env.update(
        TELECONSULT_TOKEN_SECRET=TOKEN_SECRET,
        TELECONSULT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TELECONSULT_PUBLIC_URL=base,
        TELECONSULT_RELAY_WORKERS="1",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signalling.cli", "serve", "--port", str(port),
        cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    people: list[SyntheticParticipant] = []
    try:
        async with ClientSession() as session:

            async def up() -> bool:
                try:
                    async with session.get(base + "/healthz") as health:
                        return health.status == 200
                except OSError:
                    return False

            await eventually(up, timeout=30, what="serve answers /healthz")
            body = booking_body("appointment.created", appointment_data())
            async with session.post(
                base + "/hooks/booking", data=body, headers=signed_headers(body)
            ) as answer:
                room = await answer.json()
        for role in ("practitioner", "patient"):
            person = SyntheticParticipant(base, room["links"][role], role)
            await person.connect()
            people.append(person)
        await people[1].check_in()

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 15)
        took = time.monotonic() - started
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for person in people:
            await person.close()
    assert took < 5, f"serve took {took:.1f} s to stop"
    assert process.returncode == 0
    assert process.stderr is not None
    assert b"Traceback" not in await process.stderr.read()
