"""Smoke test of docker-compose.yml on a running Docker engine (`make compose-smoke`).

Brings the stack up with throwaway secrets, then: both signalling nodes ready,
both relay nodes registered in Redis, a signed `appointment.created` webhook to
node 1, the patient checks in through node 2, the practitioner admits them
through node 1, coturn grants a relay to the session's TURN credentials, media
flows both ways through a relay node, a receiver on loopback gets
`consultation.patient_checked_in` and `consultation.patient_admitted` with valid
Standard Webhooks signatures (also listed by the integration API), and no
container restarted. Tears the stack down and prints one line:
`compose-smoke PASSED ...` or `compose-smoke FAILED ...`.

Run where the stack's host network is this process's network (deploy/compose-smoke.sh
runs it inside the engine's namespace):

    python -m tests.compose_smoke [--keep]

Not collected by pytest (its name does not start with test_).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import redis.asyncio as redis
from aiohttp import web

from signalling.webhook_signature import SignatureError, verify
from store.redis_relay_directory import RedisRelayDirectory
from tests.support import appointment_data, booking_body, signed_headers
from tests.support.synthetic import SyntheticParticipant
from tests.support.turn_permissions import TurnPermissionClient

REPO = Path(__file__).resolve().parent.parent
PROJECT = "teleconsult-smoke"
NODES = ("http://127.0.0.1:8080", "http://127.0.0.1:8081")
REDIS_URL = "redis://127.0.0.1:6379/0"
SERVICES = 6
MEDIA_TIMEOUT = 30.0
EXPECTED_EVENTS = ("consultation.patient_checked_in", "consultation.patient_admitted")

T = TypeVar("T")


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def throwaway_env(events_url: str) -> dict[str, str]:
    return {
        "TELECONSULT_PUBLIC_URL": NODES[0],
        "TELECONSULT_TOKEN_SECRET": secrets.token_urlsafe(48),
        "TELECONSULT_WEBHOOK_SECRET": whsec(),
        "TELECONSULT_TURN_SECRET": secrets.token_urlsafe(32),
        "TELECONSULT_TURN_URLS": "turn:127.0.0.1:3478?transport=udp",
        "TELECONSULT_RELAY_SECRET": secrets.token_urlsafe(32),
        "TELECONSULT_API_KEY": secrets.token_urlsafe(32),
        "TELECONSULT_EVENTS_URL": events_url,
        # A key of its own, to see that events are signed with it.
        "TELECONSULT_EVENTS_SECRET": whsec(),
    }


@dataclass
class ReceivedEvent:
    type: str
    appointment_id: str
    webhook_id: str
    signature_valid: bool


@dataclass
class EventReceiver:
    """The booking system's end of consultation events: verifies every signature."""

    secret: str = ""
    received: list[ReceivedEvent] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        try:
            verify(
                key,
                webhook_id=request.headers.get("webhook-id"),
                timestamp=request.headers.get("webhook-timestamp"),
                signature=request.headers.get("webhook-signature"),
                body=body,
                now=datetime.now(UTC),
                tolerance=timedelta(minutes=5),
            )
            valid = True
        except SignatureError:
            valid = False
        event = json.loads(body)
        self.received.append(
            ReceivedEvent(
                type=str(event.get("type")),
                appointment_id=str(event.get("data", {}).get("appointment_id")),
                webhook_id=request.headers.get("webhook-id", ""),
                signature_valid=valid,
            )
        )
        self.arrived.set()
        return web.Response(status=204)

    async def wait_for(self, appointment_id: str, types: tuple[str, ...]) -> None:
        while not set(types) <= {
            e.type for e in self.received if e.appointment_id == appointment_id
        }:
            self.arrived.clear()
            await self.arrived.wait()


@asynccontextmanager
async def serve_receiver(receiver: EventReceiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/events", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/events"
    finally:
        await runner.cleanup()


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


class Stack:
    def __init__(self, env_file: Path) -> None:
        self.base = [
            *compose_command(),
            "--project-name",
            PROJECT,
            "--project-directory",
            str(REPO),
            "--file",
            str(REPO / "docker-compose.yml"),
            "--env-file",
            str(env_file),
        ]

    async def run(self, *args: str, timeout: float) -> str:
        process = await asyncio.create_subprocess_exec(
            *self.base,
            *args,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        text = output.decode(errors="replace")
        if process.returncode != 0:
            tail = "\n".join(text.splitlines()[-30:])
            raise RuntimeError(f"compose {' '.join(args)} exited {process.returncode}:\n{tail}")
        return text

    def down(self) -> None:
        subprocess.run(
            [*self.base, "down", "--volumes", "--timeout", "10"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )


async def until(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Poll `check` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = await check()
        except (OSError, aiohttp.ClientError, redis.RedisError):
            found = None
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        await asyncio.sleep(0.2)


class Smoke:
    def __init__(self, env: dict[str, str], receiver: EventReceiver, stack: Stack) -> None:
        self.env = env
        self.receiver = receiver
        self.stack = stack
        self.timings: dict[str, float] = {}
        self.checked: list[str] = []
        self.step = "start"

    async def timed(self, step: str, work: Awaitable[T]) -> T:
        self.step = step
        started = time.monotonic()
        result = await work
        self.timings[step] = time.monotonic() - started
        return result

    async def run(self) -> None:
        await self.timed("build", self.stack.run("build", timeout=900))
        await self.timed("up", self.stack.run("up", "--detach", timeout=300))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await self.timed("ready", self.ready(http))
            room = await self.timed("webhook", self.book(http))
            await self.timed("call", self.call(room))
            await self.timed("events", self.events(room["appointment_id"]))
            await self.timed("api", self.api_lists_events(http, room["appointment_id"]))
        await self.timed("containers", self.no_restarts())

    async def ready(self, http: aiohttp.ClientSession) -> None:
        for node in NODES:

            async def answered(node: str = node) -> bool | None:
                async with http.get(node + "/readyz") as response:
                    return True if response.status == 200 else None

            await until(answered, 180, f"{node}/readyz 200")
        self.checked.append("2 signalling nodes ready")
        directory = RedisRelayDirectory.from_url(REDIS_URL)
        try:

            async def both_relays() -> dict[str, Any] | None:
                live = await directory.live_nodes()
                return live if len(live) == 2 else None

            live = await until(both_relays, 60, "2 relay nodes registered in Redis")
        finally:
            await directory.client.aclose()
        ports = sorted(node.port for node in live.values())
        self.checked.append(f"2 relay nodes registered ({', '.join(map(str, ports))})")

    async def book(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        body = booking_body("appointment.created", appointment_data())
        headers = signed_headers(body, secret=self.env["TELECONSULT_WEBHOOK_SECRET"])
        async with http.post(NODES[0] + "/hooks/booking", data=body, headers=headers) as response:
            document: dict[str, Any] = await response.json()
            if response.status not in (200, 201):
                raise RuntimeError(f"webhook answered {response.status}: {document}")
        self.checked.append(f"signed appointment.created accepted by node 1 ({response.status})")
        return document

    async def call(self, room: dict[str, Any]) -> None:
        links = room["links"]
        patient = SyntheticParticipant(NODES[1], links["patient"], "patient")
        practitioner = SyntheticParticipant(NODES[0], links["practitioner"], "practitioner")
        try:
            await patient.connect()
            position = await patient.check_in()
            self.checked.append(f"patient checked in via node 2 (position {position})")
            await practitioner.connect()
            await practitioner.open_consultation()
            entries = await practitioner.wait_for_waiting(1, timeout=15)
            await practitioner.admit(entries[0]["entry_id"])
            await asyncio.wait_for(patient.admitted.wait(), 15)
            self.checked.append("practitioner admitted them via node 1, node 2 told the patient")
            await self.turn_allocates(patient.session.result())
            await practitioner.publish()
            await patient.publish()
            await self.media_both_ways(room["room_id"], patient, practitioner)
        finally:
            await patient.close()
            await practitioner.close()

    async def turn_allocates(self, session: dict[str, Any]) -> None:
        """coturn grants a relay to the TURN credentials signalling handed out."""
        turn = next(s for s in session["ice_servers"] if s.get("username"))
        host, port = turn["urls"][0].split(":", 1)[1].split("?")[0].rsplit(":", 1)
        client = TurnPermissionClient((host, int(port)), turn["username"], turn["credential"])
        try:
            answer = await asyncio.to_thread(client.allocate, 4)
        finally:
            client.close()
        if not answer.success:
            raise RuntimeError(f"coturn refused the allocation ({answer.error_code})")
        self.checked.append("coturn allocated a relay to the session's TURN credentials")

    async def media_both_ways(self, room_id: str, *participants: SyntheticParticipant) -> None:
        """Each side decodes test-pattern frames the other sent through a relay node."""

        def frames(p: SyntheticParticipant) -> int:
            return sum(r.pattern_frames for r in p.receptions.values())

        async def both() -> list[int] | None:
            counts = [frames(p) for p in participants]
            return counts if all(counts) else None

        counts = await until(both, MEDIA_TIMEOUT, "test-pattern frames both ways")
        directory = RedisRelayDirectory.from_url(REDIS_URL)
        try:
            node_id = await directory.placement(room_id)
            live = await directory.live_nodes()
        finally:
            await directory.client.aclose()
        node = live[node_id].address if node_id in live else f"unknown node {node_id}"
        self.checked.append(f"media both ways through the relay node at {node} (frames {counts})")

    async def no_restarts(self) -> None:
        ids = (await self.stack.run("ps", "--quiet", timeout=60)).split()
        docker = os.environ.get("DOCKER", "docker")
        process = await asyncio.create_subprocess_exec(
            docker,
            "inspect",
            "--format",
            "{{.Name}} {{.State.Status}} {{.RestartCount}}",
            *ids,
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await process.communicate()
        states = [line.split() for line in output.decode().splitlines()]
        bad = [s for s in states if s[1:] != ["running", "0"]]
        if len(states) != SERVICES or bad:
            raise RuntimeError(f"containers not all up without restarts: {states}")
        self.checked.append(f"{SERVICES} containers running, none restarted")

    async def events(self, appointment_id: str) -> None:
        await asyncio.wait_for(self.receiver.wait_for(appointment_id, EXPECTED_EVENTS), 60)
        mine = [e for e in self.receiver.received if e.appointment_id == appointment_id]
        invalid = [e.type for e in mine if not e.signature_valid]
        if invalid:
            raise RuntimeError(f"events with an invalid signature: {invalid}")
        self.checked.append(
            f"{len(mine)} signed events received ({', '.join(e.type for e in mine)})"
        )

    async def api_lists_events(self, http: aiohttp.ClientSession, appointment_id: str) -> None:
        headers = {"Authorization": "Bearer " + self.env["TELECONSULT_API_KEY"]}
        async with http.get(NODES[1] + "/api/v1/events", headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"GET /api/v1/events answered {response.status}")
            listed = await response.json()
        types = {
            e["type"] for e in listed["events"] if e["data"]["appointment_id"] == appointment_id
        }
        if not set(EXPECTED_EVENTS) <= types:
            raise RuntimeError(f"GET /api/v1/events on node 2 lists only {sorted(types)}")
        self.checked.append("node 2's API (bearer key) lists them")


async def main(keep: bool) -> int:
    started = time.monotonic()
    receiver = EventReceiver()
    workdir = Path(tempfile.mkdtemp(prefix="compose-smoke-"))
    async with serve_receiver(receiver) as events_url:
        env = throwaway_env(events_url)
        receiver.secret = env["TELECONSULT_EVENTS_SECRET"]
        env_file = workdir / ".env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        env_file.chmod(0o600)
        stack = Stack(env_file)
        smoke = Smoke(env, receiver, stack)
        failure: str | None = None
        try:
            await smoke.run()
        except Exception as error:
            failure = f"{type(error).__name__}: {error}"
            try:
                print(await stack.run("logs", "--no-color", "--tail", "40", timeout=60))
            except Exception as logs_error:
                print(f"(no compose logs: {logs_error})")
        finally:
            if not keep:
                await asyncio.to_thread(stack.down)
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.monotonic() - started
    timings = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in smoke.timings.items())
    for line in smoke.checked:
        print(f"  ok: {line}")
    if failure is None:
        print(f"compose-smoke PASSED in {total:.1f}s ({timings})")
        return 0
    print(f"compose-smoke FAILED at {smoke.step} after {total:.1f}s ({timings}): {failure}")
    return 1


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compose_smoke")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    os.chdir(REPO)
    return asyncio.run(main(args.keep))


if __name__ == "__main__":
    sys.exit(cli())
