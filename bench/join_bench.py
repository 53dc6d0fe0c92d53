"""`teleconsult bench join`: admit -> first decrypted remote frame, against the browser's floor.

    teleconsult bench join --runs 5

Starts the real app on a loopback port (in this process, E2EE required unless
`--e2ee off`), books one appointment per run through the signed webhook, and
drives headless Chromium (Debian's, through Playwright, fake camera and
microphone): the practitioner opens the consultation, the patient checks in,
the practitioner clicks admit. A run's figures are the time from that click
to the first remote video frame rendered on each side (a frame renders only
once decrypted), both read from the pages' own clocks on one timeline
(`performance.timeOrigin + performance.now()`).

In the same run, alternating with the consultations, it measures the
browser's floor: two peer connections in one page (bench/join_floor/), the
camera already running, from `createOffer` to a first frame both ways.
It prints one JSON line and a headline: the medians, the ratio of the slower
side's median to the floor's, and FAILED (no figures) if any run did not
reach a frame on both sides or, with E2EE, was not encrypted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import socket
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from signalling.app import make_app
from signalling.config import Settings
from signalling.webhook_signature import sign

FLOOR_PAGE = Path(__file__).parent / "join_floor"
CHROMIUM = os.environ.get("TELECONSULT_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
STEP_MS = 20_000
GOAL_RATIO = 2.0
FRAME_AT = "() => window.teleconsultMetrics && window.teleconsultMetrics.firstRemoteFrameAt"
EPOCH_OF_FRAME = "() => performance.timeOrigin + window.teleconsultMetrics.firstRemoteFrameAt"
# Each step of the page's join (web_client/timeline.js) on the same epoch clock.
EPOCH_TIMELINE = """() => Object.fromEntries(
  Object.entries(window.teleconsultMetrics.timeline)
    .map(([step, at]) => [step, performance.timeOrigin + at])
)"""
ADMIT = """() => {
  const button = document.querySelector('[data-testid=waiting-entry] [data-testid=admit]');
  const at = performance.timeOrigin + performance.now();
  button.click();
  return at;
}"""


def add_join_arguments(targets: Any) -> None:
    join = targets.add_parser("join", help="admit -> first decrypted frame, against the floor")
    join.add_argument("--runs", type=int, default=5, help="consultations and floor runs (5)")
    join.add_argument("--e2ee", choices=("required", "off"), default="required", help="(required)")


def run_join(args: argparse.Namespace) -> int:
    result = asyncio.run(measure(max(1, min(args.runs, 50)), args.e2ee))
    print(json.dumps(result), flush=True)
    print(headline(result), flush=True)
    return 0 if result["result"] == "ok" else 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def _serve(app: web.Application, port: int) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _floor_app() -> web.Application:
    app = web.Application()
    app.router.add_static("/", FLOOR_PAGE)
    return app


class Booking:
    """Appointments booked through the signed webhook, as a booking system does."""

    def __init__(self, base_url: str, webhook_secret: str) -> None:
        self.base_url = base_url
        self._key = base64.b64decode(webhook_secret.removeprefix("whsec_"))

    async def book(self, http: aiohttp.ClientSession, index: int) -> dict[str, Any]:
        starts_at = datetime.now(UTC) + timedelta(minutes=2)
        body = json.dumps(
            {
                "type": "appointment.created",
                "data": {
                    "appointment_id": f"bench-join-{index}-{secrets.token_hex(3)}",
                    "practitioner": {"id": "bench-practitioner", "name": "Dr Bernard"},
                    "patient": {"id": f"bench-patient-{index}", "name": "Alice Martin"},
                    "starts_at": starts_at.isoformat(),
                    "ends_at": (starts_at + timedelta(minutes=30)).isoformat(),
                },
            }
        ).encode()
        webhook_id = f"msg_{secrets.token_hex(8)}"
        timestamp = int(time.time())
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, webhook_id, timestamp, body),
            "content-type": "application/json",
        }
        async with http.post(self.base_url + "/hooks/booking", data=body, headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(f"booking refused: HTTP {r.status}")
            document: dict[str, Any] = await r.json()
            return document


async def _join_once(browser: Any, links: dict[str, str], e2ee: bool) -> dict[str, Any]:
    doctor_context = await browser.new_context()
    patient_context = await browser.new_context()
    try:
        doctor = await doctor_context.new_page()
        patient = await patient_context.new_page()
        await doctor.goto(links["practitioner"])
        await doctor.wait_for_selector("body[data-state=precall]", timeout=STEP_MS)
        await doctor.get_by_test_id("check-in").click(timeout=STEP_MS)
        await doctor.wait_for_selector("body[data-state=in-call]", timeout=STEP_MS)
        await patient.goto(links["patient"])
        await patient.wait_for_selector("body[data-state=precall]", timeout=STEP_MS)
        await patient.get_by_test_id("check-in").click(timeout=STEP_MS)
        await patient.wait_for_selector("body[data-state=waiting]", timeout=STEP_MS)
        await doctor.wait_for_selector(
            "[data-testid=waiting-entry] [data-testid=admit]", timeout=STEP_MS
        )
        # Let the practitioner's page settle: a real click comes seconds after the entry shows.
        await asyncio.sleep(0.5)
        admitted_at: float = await doctor.evaluate(ADMIT)
        for page in (patient, doctor):
            await page.wait_for_function(FRAME_AT, timeout=STEP_MS)
        patient_at: float = await patient.evaluate(EPOCH_OF_FRAME)
        doctor_at: float = await doctor.evaluate(EPOCH_OF_FRAME)
        if e2ee:
            for page in (patient, doctor):
                await page.wait_for_selector(
                    "[data-testid=e2ee-status][data-state=encrypted]",
                    state="attached",
                    timeout=STEP_MS,
                )
        steps = {}
        for side, page in (("patient", patient), ("practitioner", doctor)):
            marks: dict[str, float] = await page.evaluate(EPOCH_TIMELINE)
            steps[side] = {step: at - admitted_at for step, at in marks.items()}
        return {
            "patient_ms": patient_at - admitted_at,
            "practitioner_ms": doctor_at - admitted_at,
            "steps": steps,
        }
    finally:
        await doctor_context.close()
        await patient_context.close()


def _chromium() -> str:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        raise SystemExit("teleconsult bench join: Chromium not found (set TELECONSULT_CHROMIUM)")
    return executable


async def measure(runs: int, e2ee_mode: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    executable = _chromium()
    port = _free_port()
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    settings = Settings(
        token_secret=secrets.token_urlsafe(32),
        webhook_secret=webhook_secret,
        public_url=f"http://127.0.0.1:{port}",
        e2ee=e2ee_mode,
    )
    floors: list[float] = []
    joins: list[dict[str, Any]] = []
    failures: list[str] = []
    async with (
        _serve(make_app(settings), port) as base_url,
        _serve(_floor_app(), _free_port()) as floor_url,
        aiohttp.ClientSession() as http,
        async_playwright() as playwright,
    ):
        booking = Booking(base_url, webhook_secret)
        browser = await playwright.chromium.launch(
            executable_path=executable, args=FLAGS, headless=True
        )
        try:
            floor_context = await browser.new_context()
            floor_page = await floor_context.new_page()
            await floor_page.goto(floor_url + "/index.html")
            await floor_page.wait_for_selector("body[data-state=ready]", timeout=STEP_MS)
            # One of each first, not counted: the first call of a fresh browser warms codecs.
            await floor_page.evaluate("() => window.measureFloor()")
            room = await booking.book(http, -1)
            await _join_once(browser, room["links"], e2ee_mode == "required")
            for index in range(runs):
                floors.append(await floor_page.evaluate("() => window.measureFloor()"))
                room = await booking.book(http, index)
                try:
                    joins.append(await _join_once(browser, room["links"], e2ee_mode == "required"))
                except Exception as exc:  # A timeout names the step that never came.
                    failures.append(f"run {index}: {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            await browser.close()
    return summarize(floors, joins, failures, e2ee_mode)


def step_medians(joins: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each side's median time of each join step after the admit click, in time order."""
    sides: dict[str, dict[str, float]] = {}
    for side in ("patient", "practitioner"):
        times: dict[str, list[float]] = {}
        for join in joins:
            for step, at in join.get("steps", {}).get(side, {}).items():
                times.setdefault(step, []).append(at)
        medians = {step: round(statistics.median(ts), 1) for step, ts in times.items()}
        # Steps from before the click (the practitioner's own publishing) are not the join's.
        sides[side] = dict(
            sorted(((s, t) for s, t in medians.items() if t >= 0), key=lambda x: x[1])
        )
    return sides


def summarize(
    floors: list[float], joins: list[dict[str, Any]], failures: list[str], e2ee: str
) -> dict[str, Any]:
    ok = not failures and bool(joins) and bool(floors)
    floor = statistics.median(floors) if floors else None
    patient = statistics.median(j["patient_ms"] for j in joins) if joins else None
    doctor = statistics.median(j["practitioner_ms"] for j in joins) if joins else None
    slower = max(patient, doctor) if patient is not None and doctor is not None else None
    ratio = round(slower / floor, 2) if ok and slower is not None and floor else None
    return {
        "result": "ok" if ok else "FAILED",
        "failed_because": failures,
        "e2ee": e2ee,
        "runs": len(joins),
        "floor_ms_median": round(floor, 1) if ok and floor is not None else None,
        "patient_ms_median": round(patient, 1) if ok and patient is not None else None,
        "practitioner_ms_median": round(doctor, 1) if ok and doctor is not None else None,
        "ratio_to_floor": ratio,
        "goal_ratio": GOAL_RATIO,
        "floor_ms": [round(f, 1) for f in floors],
        "patient_ms": [round(j["patient_ms"], 1) for j in joins],
        "practitioner_ms": [round(j["practitioner_ms"], 1) for j in joins],
        "steps_ms_median": step_medians(joins),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }


def headline(result: dict[str, Any]) -> str:
    load = " ".join(str(x) for x in result["load_average"])
    if result["result"] != "ok":
        return f"join: FAILED ({'; '.join(result['failed_because']) or 'no run'}), load {load}"
    verdict = "within" if result["ratio_to_floor"] <= GOAL_RATIO else "OVER"
    return (
        f"join (E2EE {result['e2ee']}): admit -> first frame median patient "
        f"{result['patient_ms_median']} ms, practitioner {result['practitioner_ms_median']} ms; "
        f"browser floor {result['floor_ms_median']} ms; {result['ratio_to_floor']}x the floor "
        f"({verdict} the {GOAL_RATIO}x goal), {result['runs']} runs, load average {load}"
    )
