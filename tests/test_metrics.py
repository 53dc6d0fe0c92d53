"""`/metrics`: Prometheus text on its own listener, checked by `promtool`, naming nobody.

A full consultation (booking webhook, waiting room, admission, media both
ways through the real relay, end, events delivered) runs against the real app
on a real port; then the metrics listener is scraped and the text goes
through `promtool check metrics` (Debian's `prometheus` package, installed by
`make system-deps`: a missing promtool fails, it never skips).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from media.relay import Relay
from media.relay_metrics import ForwardingTotals
from media.worker_relay import WorkerRelay
from signalling.app import METRICS, make_app
from signalling.config import ConfigError
from signalling.metrics import delivery_outcome, relay_metric_families, relay_node_metrics
from tests.conftest import LiveServer
from tests.support import make_settings
from tests.support.polling import eventually
from tests.support.redis_server import free_port
from tests.support.synthetic import SyntheticParticipant
from tests.test_settings_errors import assert_one_line_naming, environment, run_cli

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana-dashboard.json"
PROMTOOL = "/usr/bin/promtool"
PATIENT_NAME = "Zephyrine Quatremain"
PRACTITIONER_NAME = "Octavia Brightwater"

# What an operator's dashboard needs, by family (counters without `_total`).
FAMILIES = {
    "teleconsult_rooms",
    "teleconsult_waiting_people",
    "teleconsult_in_call_people",
    "teleconsult_wait_seconds",
    "teleconsult_check_ins",
    "teleconsult_admissions",
    "teleconsult_denials",
    "teleconsult_no_shows",
    "teleconsult_rooms_ended",
    "teleconsult_webhooks",
    "teleconsult_event_deliveries",
    "teleconsult_events_given_up",
    "teleconsult_event_delivery_lag_seconds",
    "teleconsult_socketio_connections",
    "teleconsult_store_seconds",
    "teleconsult_store_errors",
    "teleconsult_store_up",
    "teleconsult_relay_worker_up",
    "teleconsult_relay_rooms",
    "teleconsult_relay_packets_received",
    "teleconsult_relay_packets_forwarded",
    "teleconsult_relay_forwarded_bytes",
    "teleconsult_relay_retransmitted_packets",
    "teleconsult_relay_nacked_packets",
    "teleconsult_relay_plis",
    "teleconsult_relay_packets_lost",
    "teleconsult_relay_cpu_seconds",
    "process_cpu_seconds",
}


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool") or PROMTOOL
    if not os.path.exists(promtool):
        pytest.fail(
            "promtool is missing: install Debian's `prometheus` package (make system-deps)",
            pytrace=False,
        )
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


async def scrape(port: int) -> str:
    async with (
        ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


async def event_sink(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    sink = web.Application()
    sink.router.add_post("/events", accept)
    server = await aiohttp_server(sink, host="127.0.0.1")
    return str(server.make_url("/events"))


async def consultation_with_media(server: LiveServer, room: dict[str, Any]) -> list[str]:
    """Book → wait → admit → video both ways → leave → end; returns the entry ids seen."""
    doctor = SyntheticParticipant(server.base_url, room["links"]["practitioner"], "doctor")
    patient = SyntheticParticipant(server.base_url, room["links"]["patient"], "patient")
    try:
        await doctor.connect()
        await doctor.open_consultation()
        await doctor.publish()
        await patient.connect()
        await patient.check_in()
        [entry] = await doctor.wait_for_waiting(1)
        await doctor.admit(entry["entry_id"])
        await asyncio.wait_for(patient.admitted.wait(), 10)
        await patient.publish()

        def both_see_video() -> bool:
            return all(
                any(r.video_frames >= 5 for r in p.receptions.values()) for p in (doctor, patient)
            )

        await eventually(both_see_video, timeout=20, what="video both ways")
        entry_ids = [entry["entry_id"]] + [
            str(r.publisher.get("entry_id")) for r in patient.receptions.values()
        ]
        await patient.call("leave")
        await doctor.call("end_consultation")
        return entry_ids
    finally:
        await patient.close()
        await doctor.close()


@pytest.mark.timeout(90)
async def test_metrics_after_a_full_consultation_pass_promtool_and_name_nobody(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    metrics_port = free_port()
    settings = make_settings(
        metrics_addr=f"127.0.0.1:{metrics_port}", events_url=await event_sink(aiohttp_server)
    )
    app = make_app(settings, relay=Relay())
    server = LiveServer(await aiohttp_server(app, host="127.0.0.1"))
    room = await server.book(patient_name=PATIENT_NAME, practitioner_name=PRACTITIONER_NAME)

    entry_ids = await consultation_with_media(server, room)

    async def delivered() -> bool:
        text = await scrape(metrics_port)
        return value(text, "teleconsult_event_deliveries_total", outcome="delivered") >= 5

    await eventually(delivered, timeout=15, what="the five consultation events delivered")
    text = await scrape(metrics_port)
    promtool_check(text)
    assert families(text) >= FAMILIES, sorted(FAMILIES - families(text))

    # Plausible values: one admission after a wait, media forwarded both ways, a room ended.
    assert value(text, "teleconsult_admissions_total", role="patient") == 1
    assert value(text, "teleconsult_admissions_total", role="guest") == 0
    assert value(text, "teleconsult_check_ins_total", role="patient") == 1
    assert value(text, "teleconsult_wait_seconds_count") == 1
    assert value(text, "teleconsult_rooms_ended_total", reason="ended") == 1
    assert value(text, "teleconsult_rooms", state="ended") == 1
    assert value(text, "teleconsult_waiting_people", role="patient") == 0
    assert value(text, "teleconsult_webhooks_total", code="ok", status="201") == 1
    assert value(text, "teleconsult_event_delivery_lag_seconds_count") >= 5
    assert value(text, "teleconsult_relay_worker_up", worker="main") == 1
    forwarded = value(text, "teleconsult_relay_packets_forwarded_total", worker="main")
    received = value(text, "teleconsult_relay_packets_received_total", worker="main")
    assert forwarded >= 20, forwarded  # Five video frames each way at least, and audio.
    assert received >= forwarded / 2, received
    assert value(text, "teleconsult_relay_forwarded_bytes_total", worker="main") > forwarded * 12
    assert (
        value(text, "teleconsult_relay_plis_total", worker="main", direction="to_publishers") >= 1
    )
    assert value(text, "teleconsult_relay_rooms", worker="main") == 0  # Closed, totals kept.
    assert value(text, "teleconsult_store_seconds_count", store="rooms", operation="update") >= 4
    assert value(text, "teleconsult_store_errors_total", store="rooms", operation="update") == 0
    assert value(text, "teleconsult_store_up") == 1

    # Nobody is named or identified: no name, token, room, appointment, person or entry id.
    practitioner_token = room["links"]["practitioner"].split("#", 1)[1]
    patient_token = room["links"]["patient"].split("#", 1)[1]
    secret_words = [
        "Zephyrine",
        "Quatremain",
        "Octavia",
        "Brightwater",
        practitioner_token,
        patient_token,
        room["room_id"],
        room["appointment_id"],
        *entry_ids,
    ]
    assert len(entry_ids) == 2
    assert all(entry_ids)
    for word in secret_words:
        assert word not in text, word

    # Never on the public port.
    async with (
        ClientSession() as session,
        session.get(server.base_url + "/metrics") as response,
    ):
        assert response.status == 404


async def test_without_an_address_there_is_no_metrics_listener(live_server: LiveServer) -> None:
    async with (
        ClientSession() as session,
        session.get(live_server.base_url + "/metrics") as response,
    ):
        assert response.status == 404
    assert live_server.app[METRICS].registry is not None  # Counted, just not served.


async def test_refused_webhooks_are_counted_by_error_code(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    app = make_app(make_settings(), relay=Relay())
    server = LiveServer(await aiohttp_server(app, host="127.0.0.1"))
    async with (
        ClientSession() as session,
        session.post(server.base_url + "/hooks/booking", data=b"{}") as response,
    ):
        assert response.status == 401
    text = (await app[METRICS].scrape()).decode()
    assert (
        value(text, "teleconsult_webhooks_total", code="missing_signature_headers", status="401")
        == 1
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_relay_counters_come_from_the_worker_processes(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    metrics_port = free_port()
    relay = WorkerRelay(2)
    app = make_app(make_settings(metrics_addr=f"127.0.0.1:{metrics_port}"), relay=relay)
    server = LiveServer(await aiohttp_server(app, host="127.0.0.1"))
    room = await server.book()

    await consultation_with_media(server, room)
    text = await scrape(metrics_port)

    promtool_check(text)
    assert value(text, "teleconsult_relay_worker_up", worker="0") == 1
    assert value(text, "teleconsult_relay_worker_up", worker="1") == 1
    forwarded = {
        worker: value(text, "teleconsult_relay_packets_forwarded_total", worker=worker)
        for worker in ("0", "1")
    }
    # The room lived on one worker: its packets are counted there, and only there.
    assert max(forwarded.values()) >= 20, forwarded
    assert min(forwarded.values()) == 0, forwarded
    busy = max(forwarded, key=lambda worker: forwarded[worker])
    assert value(text, "teleconsult_relay_cpu_seconds_total", worker=busy) > 0
    assert ("teleconsult_relay_packets_forwarded_total", (("worker", "main"),)) not in samples(text)


def test_a_worker_that_does_not_answer_is_down_not_stale() -> None:
    found = {
        (sample.name, sample.labels["worker"]): sample.value
        for family in relay_metric_families({"0": {"packets_out": 7}, "1": None})
        for sample in family.samples
    }
    assert found[("teleconsult_relay_worker_up", "1")] == 0
    assert found[("teleconsult_relay_packets_forwarded_total", "0")] == 7
    assert [name for name, worker in found if worker == "1"] == ["teleconsult_relay_worker_up"]


async def test_a_relay_node_serves_the_relay_families() -> None:
    relay = Relay()
    try:
        text = (await relay_node_metrics(relay).scrape()).decode()
    finally:
        await relay.close()
    promtool_check(text)
    assert value(text, "teleconsult_relay_worker_up", worker="main") == 1
    assert "teleconsult_admissions_total" not in text


def test_closed_media_keep_their_counts() -> None:
    totals = ForwardingTotals()
    totals.add({"packets_out": 5, "mode": "rtp"})
    totals.add({"packets_out": 2})
    assert totals.with_live({"packets_out": 1, "packets_in": 3}) == {
        "packets_out": 8,
        "packets_in": 3,
    }


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("http_503", "http_5xx"),
        ("http_410", "http_4xx"),
        ("http_302", "http_3xx"),
        ("timeout", "timeout"),
        ("connection_failed: ClientConnectorError", "connection_failed"),
    ],
)
def test_delivery_errors_map_to_a_bounded_outcome(error: str, outcome: str) -> None:
    assert delivery_outcome(error) == outcome


@pytest.mark.parametrize(
    ("address", "problem"),
    [("9100", "HOST:PORT"), ("127.0.0.1:http", "port"), ("127.0.0.1:8080", "public port")],
)
def test_a_bad_metrics_address_names_the_setting(address: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="TELECONSULT_METRICS_ADDR") as raised:
        make_settings(metrics_addr=address, port=8080)
    assert problem in str(raised.value)


@pytest.mark.slow
async def test_a_metrics_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        env = environment({"TELECONSULT_METRICS_ADDR": f"127.0.0.1:{busy}"})
        code, stderr = await run_cli("serve", env=env)
    assert_one_line_naming(code, stderr, "TELECONSULT_METRICS_ADDR")
    assert str(busy) in stderr


async def test_every_dashboard_query_reads_a_family_the_app_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert len(exprs) >= 15
    relay = Relay()
    try:
        text = (await make_app(make_settings(), relay=relay)[METRICS].scrape()).decode()
    finally:
        await relay.close()
    # Sample names (histograms' `_bucket`, `_sum`, `_count`), and families with no sample yet.
    exported = {name for name, _ in samples(text)} | set(re.findall(r"^# TYPE (\S+)", text, re.M))
    for expr in exprs:
        names = set(re.findall(r"\b(?:teleconsult|process)_[a-z_]+", expr))
        assert names, expr
        assert names <= exported, (expr, sorted(names - exported))


@pytest.mark.slow
async def test_teleconsult_relay_serves_metrics_on_its_own_listener(redis_url: str) -> None:
    metrics_port, listen_port = free_port(), free_port()
    env = environment({"TELECONSULT_RELAY_SECRET": "r" * 40})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "relay",
        "--redis-url",
        redis_url,
        "--listen",
        f"127.0.0.1:{listen_port}",
        "--metrics-addr",
        f"127.0.0.1:{metrics_port}",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            assert b"ready" in await process.stdout.readline()
        text = await scrape(metrics_port)
    finally:
        process.terminate()
        await process.wait()
    promtool_check(text)
    assert value(text, "teleconsult_relay_worker_up", worker="main") == 1
    assert value(text, "teleconsult_relay_cpu_seconds_total", worker="main") > 0
    assert process.returncode == 0
