"""`teleconsult bench signalling`: a queue of thousands against a real `teleconsult serve`.

The server runs as its own process (so its CPU time is its own), on loopback,
relay in process (no media here). The bench books N appointments through the
integration API across N/K practitioners, opens each practitioner's desk (the
web client's delta desk) and N patient sockets (python-socketio clients, as
the tests' synthetic participants), then:

- checks every patient in at `--rate` a second, in slot order (a walk-in
  queue: who arrives first was booked first) or `--order random`; a
  check-in's latency runs from its emit until its practitioner's desk heard
  the room waiting;
- has every desk send one message to all its waiting patients; a message's
  latency runs until each waiting socket received it.

It prints one JSON line of figures, or `FAILED: ...` and no figures when a
check-in or a message was not heard within `--wait` seconds (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import socketio

from bench.signalling_screens import (
    DeskScreen,
    Patient,
    Received,
    open_desk,
    open_patient,
    quiet,
)

MAX_PATIENTS = 5000
API_KEY = "bench-api-key-" + "x" * 24
SLOT = timedelta(minutes=10)
SERVE = (
    sys.executable,
    "-m",
    "signalling.cli",
    "serve",
    "--host",
    "127.0.0.1",
    "--log-level",
    "WARNING",
)


class BenchFailed(Exception):
    """Something the run must hear was not heard: no figures."""


def add_signalling_arguments(targets: Any) -> None:
    signalling = targets.add_parser(
        "signalling", help="check-ins and messages for a queue of thousands (one process)"
    )
    signalling.add_argument(
        "--patients", type=int, default=2000, help=f"patients, at most {MAX_PATIENTS} (2000)"
    )
    signalling.add_argument(
        "--per-practitioner",
        type=int,
        default=2000,
        help="patients per practitioner (2000: one walk-in queue)",
    )
    signalling.add_argument("--rate", type=float, default=100.0, help="check-ins a second (100)")
    signalling.add_argument(
        "--order", choices=("slot", "random"), default="slot", help="check-in order (slot)"
    )
    signalling.add_argument(
        "--wait", type=float, default=30.0, help="seconds to hear each phase out (30)"
    )


@dataclass(frozen=True)
class Plan:
    patients: int
    per_practitioner: int
    rate: float
    order: str
    wait: float


def run_signalling_bench(args: argparse.Namespace) -> int:
    plan = Plan(args.patients, args.per_practitioner, args.rate, args.order, args.wait)
    problem = _invalid(plan)
    if problem:
        print(f"teleconsult bench signalling: {problem}", file=sys.stderr)
        return 2
    _raise_file_limit()
    # A client whose connection drops says so in the figures (FAILED), not in log lines.
    for name in ("engineio.client", "socketio.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        result = asyncio.run(measure(plan))
    except BenchFailed as exc:
        print(f"FAILED: {exc}", flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


def _invalid(plan: Plan) -> str | None:
    if not 1 <= plan.patients <= MAX_PATIENTS:
        return f"--patients must be between 1 and {MAX_PATIENTS}"
    if not 1 <= plan.per_practitioner <= plan.patients:
        return "--per-practitioner must be between 1 and --patients"
    if plan.rate <= 0:
        return "--rate must be positive"
    if plan.wait < 0:
        return "--wait cannot be negative"
    return None


def _raise_file_limit() -> None:
    # Two sockets a patient on loopback (theirs and the server's, inherited by it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * MAX_PATIENTS + 1024))
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _server_cpu(pid: int) -> float:
    """User + system CPU seconds of the server process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serve() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {
        **os.environ,
        "TELECONSULT_TOKEN_SECRET": secrets.token_urlsafe(32),
        "TELECONSULT_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "TELECONSULT_API_KEY": API_KEY,
        "TELECONSULT_RELAY_WORKERS": "0",
    }
    env.pop("TELECONSULT_REDIS_URL", None)
    process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [*SERVE, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        # What python-socketio logs of clients gone mid-handshake is not the bench's output.
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _until_up(
    http: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchFailed(f"the server exited with status {process.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(base + "/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise BenchFailed("the server did not answer /healthz within 30 s")


async def _book(http: aiohttp.ClientSession, base: str, plan: Plan) -> list[Patient]:
    now = datetime.now(UTC)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limit = asyncio.Semaphore(20)

    async def one(index: int) -> Patient:
        practitioner = index // plan.per_practitioner
        place = index % plan.per_practitioner
        # The queue's slots spread over the next ten minutes, in booking order.
        starts = now + timedelta(seconds=5) + SLOT * place / plan.per_practitioner
        body = {
            "appointment_id": f"bench-{index}",
            "practitioner": {"id": f"bench-prac-{practitioner}", "name": f"Dr {practitioner}"},
            "patient": {"id": f"bench-pat-{index}", "name": f"Patient {index}"},
            "starts_at": starts.isoformat(),
            "ends_at": (starts + SLOT).isoformat(),
        }
        async with (
            limit,
            http.post(base + "/api/v1/appointments", json=body, headers=headers) as response,
        ):
            if response.status != 201:
                raise BenchFailed(f"booking answered {response.status}: {await response.text()}")
            room = await response.json()
        return Patient(room["room_id"], practitioner, room["links"]["patient"])

    return list(await asyncio.gather(*(one(i) for i in range(plan.patients))))


async def _desk_links(http: aiohttp.ClientSession, base: str, count: int) -> list[DeskScreen]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    desks = []
    for practitioner in range(count):
        url = f"{base}/api/v1/practitioners/bench-prac-{practitioner}/desk-link"
        async with http.post(url, headers=headers) as response:
            if response.status != 201:
                raise BenchFailed(f"desk link answered {response.status}")
            desks.append(DeskScreen(practitioner, (await response.json())["link"]))
    return desks


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _heard(check: Any, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while not check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def measure(plan: Plan) -> dict[str, Any]:
    load_before = os.getloadavg()
    practitioners = -(-plan.patients // plan.per_practitioner)
    received = Received()
    connector = aiohttp.TCPConnector(limit=0)
    with serve() as (base, process):
        async with aiohttp.ClientSession(connector=connector) as http:
            await _until_up(http, base, process)
            patients = await _book(http, base, plan)
            desks = await _desk_links(http, base, practitioners)
            try:
                try:
                    for desk in desks:
                        await open_desk(base, desk, received, http)
                    limit = asyncio.Semaphore(50)

                    async def opened(patient: Patient) -> None:
                        async with limit:
                            await open_patient(base, patient, received, http)

                    await asyncio.gather(*(opened(p) for p in patients))
                except (socketio.exceptions.ConnectionError, TimeoutError) as exc:
                    problem = str(exc) or type(exc).__name__
                    raise BenchFailed(f"a screen could not connect: {problem}") from exc
                await quiet(received)
                return await _phases(plan, process.pid, patients, desks, received, load_before)
            finally:
                clients = [p.client for p in patients] + [d.client for d in desks]
                await asyncio.gather(
                    *(c.disconnect() for c in clients if c is not None), return_exceptions=True
                )


async def _phases(
    plan: Plan,
    pid: int,
    patients: list[Patient],
    desks: list[DeskScreen],
    received: Received,
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    order = list(patients)
    if plan.order == "random":
        random.Random(15).shuffle(order)
    received.reset()
    refused: list[str] = []
    cpu_before = _server_cpu(pid)
    clients_before = time.process_time()
    started = time.monotonic()

    async def check_in(patient: Patient) -> None:
        assert patient.client is not None
        patient.sent_at = time.monotonic()
        ack = await patient.client.call("check_in", {}, timeout=max(plan.wait, 1))
        if not ack.get("ok"):
            refused.append(str(ack.get("error")))

    sending = []
    for index, patient in enumerate(order):
        delay = started + index / plan.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sending.append(asyncio.ensure_future(check_in(patient)))

    def all_heard() -> bool:
        return all(p.room_id in desks[p.practitioner].heard for p in patients)

    heard = await _heard(all_heard, plan.wait)
    acks = await asyncio.gather(*sending, return_exceptions=True)
    lost = [repr(a) for a in acks if isinstance(a, BaseException)]
    if refused or lost:
        raise BenchFailed(
            f"{len(refused)} check-ins refused, {len(lost)} unanswered: {(refused + lost)[:3]}"
        )
    if not heard:
        missing = sum(p.room_id not in desks[p.practitioner].heard for p in patients)
        raise BenchFailed(f"{missing} of {len(patients)} check-ins never reached the desk")
    await quiet(received)
    cpu = _server_cpu(pid) - cpu_before
    # The clients share the machine: when they need more CPU than the server, the
    # latencies say as much about them as about it.
    clients_cpu = time.process_time() - clients_before
    latencies = [
        desks[p.practitioner].heard[p.room_id] - p.sent_at
        for p in patients
        if p.sent_at is not None
    ]
    check_in_traffic = (dict(received.messages), dict(received.bytes))
    sizes = list(received.delta_sizes)

    received.reset()
    cpu_before = _server_cpu(pid)
    sent_at: dict[int, float] = {}
    acked: list[float] = []
    for desk in desks:
        assert desk.client is not None
        sent_at[desk.practitioner] = time.monotonic()
        ack = await desk.client.call(
            "message", {"text": "Le cabinet a 10 minutes de retard."}, namespace="/desk"
        )
        acked.append(time.monotonic() - sent_at[desk.practitioner])
        if not ack.get("ok"):
            raise BenchFailed(f"the message was refused: {ack.get('error')}")
    if not await _heard(lambda: all(p.message_at is not None for p in patients), plan.wait):
        missing = sum(p.message_at is None for p in patients)
        raise BenchFailed(f"{missing} of {len(patients)} waiting never got the message")
    message_cpu = _server_cpu(pid) - cpu_before
    message = [p.message_at - sent_at[p.practitioner] for p in patients if p.message_at is not None]

    def ms(value: float) -> float:
        return round(value * 1000, 1)

    messages, sent_bytes = check_in_traffic
    return {
        "bench": "signalling",
        "patients": len(patients),
        "per_practitioner": plan.per_practitioner,
        "practitioners": len(desks),
        "rate_per_s": plan.rate,
        "order": plan.order,
        "check_in_ms_p50": ms(_quantile(latencies, 0.50)),
        "check_in_ms_p95": ms(_quantile(latencies, 0.95)),
        "check_in_ms_p99": ms(_quantile(latencies, 0.99)),
        "server_cpu_ms_per_check_in": round(cpu * 1000 / len(patients), 2),
        "clients_cpu_ms_per_check_in": round(clients_cpu * 1000 / len(patients), 2),
        "message_to_all_ms_p50": ms(_quantile(message, 0.50)),
        "message_to_all_ms_p95": ms(_quantile(message, 0.95)),
        "message_to_all_ms_max": ms(max(message)),
        "message_ack_ms_max": ms(max(acked)),
        "server_cpu_ms_per_message_to_all": ms(message_cpu / len(desks)),
        "sent_to_screens_messages": messages,
        "sent_to_screens_bytes": sent_bytes,
        "desk_delta_bytes_median": int(statistics.median(sizes)) if sizes else 0,
        "desk_delta_bytes_max": max(sizes, default=0),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
