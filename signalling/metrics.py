"""`GET /metrics`: Prometheus text on its own listener (`TELECONSULT_METRICS_ADDR`).

Never on the public port.

Counters of what happened (admissions, webhooks, deliveries, store calls) are
prometheus-client metrics of one app, in that app's own registry. What is
true now (rooms by state, people waiting, connections) and what the relay
counted is read at scrape time, each source within `SCRAPE_TIMEOUT`: a scrape
never hangs on Redis or on a stuck worker, it says so (`teleconsult_store_up`,
`teleconsult_relay_worker_up`) and counts a store error.

Relay worker processes are not asked to share prometheus-client's
multiprocess files: their counters already live in the process that forwards
the packets (`media.relay_metrics`), and the worker protocol already carries
requests to them, so a scrape asks each worker for its totals (`metrics`).
That keeps the fast path free of per-packet metric calls, needs no directory
of memory-mapped files set up before import, cleaned after a crash or
marked for dead workers, and a worker that does not answer shows as down
instead of as stale numbers. `teleconsult relay` nodes serve the same relay
families on their own listener.

Labels are bounded sets only (roles, states, error codes, operations, worker
indexes): never a name, a person's or a room's id, a token or an address.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import socketio
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from media.errors import MediaError
from media.relay import Relay
from media.relay_metrics import relay_snapshot
from media.relay_node_server import Address
from media.worker_relay import WorkerRelay
from rooms.events import (
    EndReason,
    PatientAdmitted,
    PatientCheckedIn,
    PatientDenied,
    PatientNoShow,
    RoomEnded,
)
from rooms.roles import Role
from rooms.room import Room, RoomStatus, Transition
from signalling import errors
from signalling.config import ConfigError
from signalling.room_hub import RoomHub
from store.errors import StoreUnavailable

SCRAPE_TIMEOUT = 2.0
# The classic text format, which every Prometheus reads (what generate_latest writes).
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
VISITOR_ROLES = (Role.PATIENT.value, Role.GUEST.value)
NAMESPACES = ("/", "/desk")
# Seconds; a practice's waits are minutes, its integrator's outages hours.
WAIT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600)
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 1800, 3600, 21600, 86400)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
STORE_OPERATIONS: Mapping[str, tuple[str, ...]] = {
    "rooms": ("create", "get", "find_by_appointment", "update", "rooms", "purge"),
    "events": ("due", "next_attempt_at", "delivered", "attempt_failed", "release"),
}
DELIVERY_OUTCOMES = (
    "delivered",
    "http_3xx",
    "http_4xx",
    "http_5xx",
    "timeout",
    "connection_failed",
)

# A scrape-time source: the families it adds, read now.
Source = Callable[[], Awaitable[list[Metric]]]


class MetricsListenError(ConfigError):
    """The metrics listener could not bind its address."""


class _Families:
    """A collector returning what the sources read for the scrape in progress."""

    def __init__(self) -> None:
        self.current: list[Metric] = []

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        return self.current


class Metrics:
    """One process's registry and the sources read at each scrape (relay nodes use this)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sources: list[Source] = []
        self._families = _Families()
        self.registry.register(self._families)
        ProcessCollector(registry=self.registry)

    async def scrape(self) -> bytes:
        read = await asyncio.gather(*(source() for source in self.sources))
        # No await between setting and rendering: concurrent scrapes do not mix.
        self._families.current = [family for families in read for family in families]
        try:
            return generate_latest(self.registry)
        finally:
            self._families.current = []


class SignallingMetrics(Metrics):
    """`teleconsult serve`'s metrics: the waiting room, webhooks, events, store, sockets, relay."""

    def __init__(self) -> None:
        super().__init__()
        registry = self.registry
        by_role = ["role"]
        self.check_ins = Counter(
            "teleconsult_check_ins",
            "Patients and guests who entered a waiting room.",
            by_role,
            registry=registry,
        )
        self.admissions = Counter(
            "teleconsult_admissions",
            "Patients and guests admitted to a call.",
            by_role,
            registry=registry,
        )
        self.denials = Counter(
            "teleconsult_denials",
            "Patients and guests turned away by the practitioner.",
            by_role,
            registry=registry,
        )
        self.no_shows = Counter(
            "teleconsult_no_shows",
            "Appointments whose patient had not checked in in time.",
            registry=registry,
        )
        self.rooms_ended = Counter(
            "teleconsult_rooms_ended", "Rooms ended, by reason.", ["reason"], registry=registry
        )
        self.wait = Histogram(
            "teleconsult_wait_seconds",
            "Time from check-in to admission.",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.webhooks = Counter(
            "teleconsult_webhooks",
            "Booking webhooks by outcome: code `ok` or the error code, and the HTTP status.",
            ["code", "status"],
            registry=registry,
        )
        self.deliveries = Counter(
            "teleconsult_event_deliveries",
            "Attempts to deliver a consultation event, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.events_given_up = Counter(
            "teleconsult_events_given_up",
            "Consultation events no longer retried after their last failed attempt.",
            registry=registry,
        )
        self.delivery_lag = Histogram(
            "teleconsult_event_delivery_lag_seconds",
            "Time from a consultation event to its delivery.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.store_latency = Histogram(
            "teleconsult_store_seconds",
            "Duration of store calls, by store and operation.",
            ["store", "operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.store_errors = Counter(
            "teleconsult_store_errors",
            "Store calls that failed (store unavailable, or a scrape's read timed out).",
            ["store", "operation"],
            registry=registry,
        )
        # Every series exists from the start, at zero: rates and dashboards need no guess.
        for role in VISITOR_ROLES:
            for family in (self.check_ins, self.admissions, self.denials):
                family.labels(role)
        for reason in EndReason:
            self.rooms_ended.labels(reason.value)
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome)
        for store, operations in STORE_OPERATIONS.items():
            for operation in operations:
                self.store_latency.labels(store, operation)
                self.store_errors.labels(store, operation)

    def watch(self, hub: RoomHub, sio: socketio.AsyncServer) -> None:
        """Read the hub's rooms, the relay and the Socket.IO connections at each scrape."""
        self.sources += [
            lambda: self._rooms(hub),
            lambda: relay_families(hub.relay),
            lambda: socketio_families(sio),
        ]

    def transition(self, before: Room | None, transition: Transition) -> None:
        """Count what a stored transition did; `before` is the room it was applied to."""
        for event in transition.events:
            match event:
                case PatientCheckedIn(role=role):
                    self.check_ins.labels(role.value).inc()
                case PatientAdmitted(entry_id=entry_id, role=role):
                    self.admissions.labels(role.value).inc()
                    waited = _waited(before, transition.room, entry_id)
                    if waited is not None:
                        self.wait.observe(waited)
                case PatientDenied(role=role):
                    self.denials.labels(role.value).inc()
                case PatientNoShow():
                    self.no_shows.inc()
                case RoomEnded(reason=reason):
                    self.rooms_ended.labels(reason.value).inc()

    def delivery_failed(self, error: str, given_up: bool) -> None:
        self.deliveries.labels(delivery_outcome(error)).inc()
        if given_up:
            self.events_given_up.inc()

    def delivered(self, lag_seconds: float | None) -> None:
        self.deliveries.labels("delivered").inc()
        if lag_seconds is not None:
            self.delivery_lag.observe(max(lag_seconds, 0.0))

    def count_webhooks(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """`handler`, counting each answer by its code (`ok` or the error table's) and status."""

        async def counted(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                failure = errors.http_failure(exc.status, exc.reason)
                self.webhooks.labels(failure.code, str(failure.status)).inc()
                raise
            except Exception as exc:
                failure = errors.failure_of(exc) or errors.INTERNAL_ERROR
                self.webhooks.labels(failure.code, str(failure.status)).inc()
                raise
            self.webhooks.labels("ok", str(response.status)).inc()
            return response

        return counted

    async def _rooms(self, hub: RoomHub) -> list[Metric]:
        up = GaugeMetricFamily(
            "teleconsult_store_up", "1 if this scrape read the rooms from the store in time."
        )
        try:
            rooms = await asyncio.wait_for(hub.rooms(), SCRAPE_TIMEOUT)
        except (TimeoutError, StoreUnavailable) as exc:
            if isinstance(exc, TimeoutError):
                self.store_errors.labels("rooms", "rooms").inc()
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *room_families(rooms, hub.clock())]


def _waited(before: Room | None, after: Room, entry_id: str) -> float | None:
    entry = None if before is None else before.waiting.get(entry_id)
    participant = after.participant(entry_id)
    if entry is None or participant is None:
        return None
    return max((participant.joined_at - entry.checked_in_at).total_seconds(), 0.0)


def delivery_outcome(error: str) -> str:
    """A bounded outcome for an attempt's error (`http_503`, `timeout`, `connection_failed: X`)."""
    if error.startswith("http_") and error[5:6] in ("3", "4", "5"):
        return f"http_{error[5]}xx"
    if error.startswith("connection_failed"):
        return "connection_failed"
    return "timeout" if error == "timeout" else "connection_failed"


def room_families(rooms: Iterable[Room], now: datetime) -> list[Metric]:
    """Rooms held by state, people waiting and in calls by role: counted, never named."""
    by_state = dict.fromkeys((status.value for status in RoomStatus), 0)
    waiting = dict.fromkeys(VISITOR_ROLES, 0)
    in_call = dict.fromkeys((role.value for role in Role), 0)
    for room in rooms:
        status = room.status(now)
        by_state[status.value] += 1
        if status in (RoomStatus.ENDED, RoomStatus.CANCELLED):
            continue
        for entry in room.waiting.entries:
            waiting[entry.role.value] = waiting.get(entry.role.value, 0) + 1
        for participant in room.in_call:
            in_call[participant.role.value] += 1
    rooms_family = GaugeMetricFamily("teleconsult_rooms", "Rooms held, by state.", labels=["state"])
    for state, count in by_state.items():
        rooms_family.add_metric([state], count)
    waiting_family = GaugeMetricFamily(
        "teleconsult_waiting_people", "People in waiting rooms now, by role.", labels=["role"]
    )
    for role, count in waiting.items():
        waiting_family.add_metric([role], count)
    call_family = GaugeMetricFamily(
        "teleconsult_in_call_people", "People in calls now, by role.", labels=["role"]
    )
    for role, count in in_call.items():
        call_family.add_metric([role], count)
    return [rooms_family, waiting_family, call_family]


async def socketio_families(sio: socketio.AsyncServer) -> list[Metric]:
    """Socket.IO connections of this process, by namespace (`/` calls, `/desk` desks)."""
    family = GaugeMetricFamily(
        "teleconsult_socketio_connections",
        "Socket.IO connections to this process, by namespace.",
        labels=["namespace"],
    )
    for namespace in NAMESPACES:
        family.add_metric(
            [namespace], sum(1 for _ in sio.manager.get_participants(namespace, None))
        )
    return [family]


# Relay families: (metric, help, the snapshot key, extra label values).
RELAY_GAUGES = (
    ("teleconsult_relay_rooms", "Rooms this relay forwards media for.", "rooms"),
    ("teleconsult_relay_publications", "Publish connections held.", "publications"),
    ("teleconsult_relay_subscriptions", "Subscription connections held.", "subscriptions"),
)
RELAY_COUNTERS = (
    ("teleconsult_relay_packets_received", "RTP packets received from publishers.", "packets_in"),
    (
        "teleconsult_relay_packets_forwarded",
        "RTP packets sent to subscribers (retransmissions included).",
        "packets_out",
    ),
    ("teleconsult_relay_forwarded_bytes", "RTP bytes sent to subscribers.", "bytes_out"),
    (
        "teleconsult_relay_retransmitted_packets",
        "Packets sent again from the relay's cache after a subscriber's NACK.",
        "retransmitted",
    ),
    (
        "teleconsult_relay_packets_lost",
        "Packets subscribers report lost (RTCP receiver reports, cumulative per track).",
        "subscriber_lost",
    ),
    (
        "teleconsult_relay_malformed_packets",
        "Malformed packets dropped.",
        "malformed_packets",
    ),
    ("teleconsult_relay_cpu_seconds", "CPU time of the relay's process.", "cpu_seconds"),
)
# (metric, help, {direction: snapshot key})
RELAY_FEEDBACK = (
    (
        "teleconsult_relay_nacked_packets",
        "Packets asked again: by subscribers of the relay, by the relay of publishers.",
        {"from_subscribers": "subscriber_nacks", "to_publishers": "upstream_nacks"},
    ),
    (
        "teleconsult_relay_plis",
        "Key frame requests (PLI/FIR): from subscribers, and sent to publishers.",
        {"from_subscribers": "subscriber_keyframe_requests", "to_publishers": "keyframe_requests"},
    ),
)


async def relay_families(relay: object) -> list[Metric]:
    """The relay's families, one series per worker process (`main`: a relay in this process).

    Relay nodes (`teleconsult relay`) report their own on their own listener.
    """
    if isinstance(relay, Relay):
        return relay_metric_families({"main": relay_snapshot(relay)})
    if not isinstance(relay, WorkerRelay):
        return []

    async def ask(connection: Any) -> dict[str, float] | None:
        try:
            answer = await asyncio.wait_for(connection.request("metrics"), SCRAPE_TIMEOUT)
        except (MediaError, TimeoutError, ConnectionError):
            return None
        return answer if isinstance(answer, dict) else None

    answers = await asyncio.gather(*(ask(c) for c in relay.connections))
    return relay_metric_families({str(i): answer for i, answer in enumerate(answers)})


def relay_metric_families(snapshots: Mapping[str, Mapping[str, float] | None]) -> list[Metric]:
    """Families over `media.relay_metrics.relay_snapshot`s by worker (None: it did not answer)."""
    up = GaugeMetricFamily(
        "teleconsult_relay_worker_up",
        "1 if the relay worker answered this scrape.",
        labels=["worker"],
    )
    families: list[Metric] = [up]
    by_worker: list[tuple[GaugeMetricFamily | CounterMetricFamily, str]] = [
        (GaugeMetricFamily(name, text, labels=["worker"]), key) for name, text, key in RELAY_GAUGES
    ]
    by_worker += [
        (CounterMetricFamily(name, text, labels=["worker"]), key)
        for name, text, key in RELAY_COUNTERS
    ]
    feedback = [
        (CounterMetricFamily(name, text, labels=["worker", "direction"]), keys)
        for name, text, keys in RELAY_FEEDBACK
    ]
    for worker, snapshot in snapshots.items():
        up.add_metric([worker], 0 if snapshot is None else 1)
        if snapshot is None:
            continue
        for family, key in by_worker:
            family.add_metric([worker], float(snapshot.get(key, 0)))
        for family, keys in feedback:
            for direction, key in keys.items():
                family.add_metric([worker, direction], float(snapshot.get(key, 0)))
    families += [family for family, _ in by_worker]
    families += [family for family, _ in feedback]
    return families


def relay_node_metrics(relay: Relay) -> Metrics:
    """A relay node's metrics: its relay's families and its process."""
    metrics = Metrics()

    async def relay_source() -> list[Metric]:
        return relay_metric_families({"main": relay_snapshot(relay)})

    metrics.sources.append(relay_source)
    return metrics


def metrics_app(metrics: Metrics) -> web.Application:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=await metrics.scrape(), headers={"Content-Type": TEXT_FORMAT})

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app


@contextlib.asynccontextmanager
async def listening(metrics: Metrics, address: Address) -> AsyncIterator[None]:
    """Serve `/metrics` on `address` while inside; a bind failure is a `MetricsListenError`."""
    runner = web.AppRunner(metrics_app(metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, address.host, address.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise MetricsListenError(
            f"cannot listen on {address} for metrics (--metrics-addr, TELECONSULT_METRICS_ADDR): "
            f"{exc.strerror or exc}"
        ) from None
    try:
        yield
    finally:
        await runner.cleanup()


def listener(
    metrics: Metrics, address: Address
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The listener as an aiohttp `cleanup_ctx`: up with the app, down with it."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        async with listening(metrics, address):
            yield

    return lifetime
