"""`teleconsult bench relay`: how many consultations a relay core carries.

    teleconsult bench relay --consultations 40 --seconds 20 --baseline frames

Starts relay worker processes (uvloop) and load generator processes
(`bench.load`), lets every stream flow, then measures for `--seconds`:
packets in and out, the relay processes' CPU time and peak memory, loss, and
latency. It prints one JSON line per relay mode (the RTP fast path first,
then each `--baseline` with the same load) and a last line comparing them.

Latency comes two ways. `relay_latency_ms_*` is measured inside the relay
(rtp mode only): from the moment a datagram is handed up by the socket to
the moment its last copy is handed back down. `e2e_latency_ms_*` is the
one-way delay from the sending client to the receiving client, read from
the abs-send-time stamp the relay forwards untouched: it adds both clients'
stacks and any queueing, so it bounds the relay's share from above. The
baselines rebuild packets and stamp their own send time, so they report no
end-to-end figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.baseline_modes import BASELINES, MODES
from bench.clip import load_clip
from bench.join_bench import add_join_arguments, run_join
from media.worker_connection import WorkerConnection
from media.worker_relay import WorkerRelay

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SETUP_TIMEOUT = 180.0


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="target", required=True)
    relay = targets.add_parser("relay", help="forwarding cost of the media relay")
    relay.add_argument("--consultations", type=int, default=10, help="two-party calls (10)")
    relay.add_argument("--seconds", type=float, default=10.0, help="measured time (10)")
    relay.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (2)")
    relay.add_argument("--workers", type=int, default=1, help="relay worker processes (1)")
    relay.add_argument("--load-processes", type=int, default=1, help="load generator processes (1)")
    relay.add_argument(
        "--baseline",
        action="append",
        default=[],
        choices=BASELINES,
        help="also run this relay mode with the same load (repeatable)",
    )
    relay.add_argument(
        "--mode", choices=list(MODES), default="rtp", help="the mode measured first (rtp)"
    )
    add_join_arguments(targets)
    relay.add_argument(
        "--receiver-loss",
        type=float,
        default=0.5,
        help="percent of video packets receivers drop on purpose and NACK, as browsers "
        "on a home network would (0.5; 0 for none)",
    )


def run_bench(args: argparse.Namespace) -> int:
    if args.target == "join":
        return run_join(args)
    settings = BenchSettings(
        consultations=args.consultations,
        seconds=args.seconds,
        warmup=args.warmup,
        workers=args.workers,
        load_processes=args.load_processes,
        receiver_loss=args.receiver_loss,
    )
    load_clip()  # encoded once here, so no codec time falls in a measurement
    results = []
    for mode in [args.mode, *[b for b in args.baseline if b != args.mode]]:
        result = asyncio.run(measure(mode, settings))
        print(json.dumps(result), flush=True)
        results.append(result)
    if len(results) > 1:
        print(json.dumps(compare(results)), flush=True)
    for result in results:
        print(headline(result), flush=True)
    return 0 if all(r["result"] == "ok" for r in results) else 1


@dataclass(frozen=True)
class BenchSettings:
    consultations: int
    seconds: float
    warmup: float = 2.0
    workers: int = 1
    load_processes: int = 1
    receiver_loss: float = 0.0

    @property
    def drop_every(self) -> int:
        return round(100 / self.receiver_loss) if self.receiver_loss > 0 else 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime: fields 14 and 15 of proc(5), counted after the command name.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class LoadProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(
        cls, sockets: list[str], first: int, count: int, drop_every: int
    ) -> LoadProcess:
        socket_args = [arg for path in sockets for arg in ("--socket", path)]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load",
            *socket_args,
            "--first",
            str(first),
            "--count",
            str(count),
            "--drop-every",
            str(drop_every),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError("a load generator exited early")
        return raw.decode().strip()

    def say(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(word.encode() + b"\n")

    async def finish(self) -> None:
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, total))
    sizes = [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
    starts = [sum(sizes[:i]) for i in range(parts)]
    return list(zip(starts, sizes, strict=True))


async def measure(mode: str, settings: BenchSettings) -> dict[str, Any]:
    # The benchmark's own workers: they can run the baseline modes the relay does not have.
    relay = WorkerRelay(settings.workers, worker_command=("-m", "bench.worker", "--mode", mode))
    await relay.start()
    sockets = [p.socket_path for p in relay.processes]
    pids = [p.pid for p in relay.processes]
    loads: list[LoadProcess] = []
    try:
        for first, count in _split(settings.consultations, settings.load_processes):
            loads.append(await LoadProcess.start(sockets, first, count, settings.drop_every))
        ready = [await load.line(SETUP_TIMEOUT) for load in loads]
        await asyncio.sleep(settings.warmup)

        probes = [await WorkerConnection.open(path) for path in sockets]
        for probe in probes:
            await probe.request("reset_latency")
        relay_before = [await probe.request("forwarding_stats") for probe in probes]
        cpu_before = [cpu_seconds(pid) for pid in pids]
        load_cpu_before = [cpu_seconds(load.process.pid) for load in loads]
        started = time.monotonic()
        for load in loads:
            load.say("start")
        await asyncio.sleep(settings.seconds)
        for load in loads:
            load.say("stop")
        elapsed = time.monotonic() - started
        cpu_after = [cpu_seconds(pid) for pid in pids]
        load_cpu_after = [cpu_seconds(load.process.pid) for load in loads]
        relay_after = [await probe.request("forwarding_stats") for probe in probes]
        rss = [peak_rss_mb(pid) for pid in pids]
        counts = [json.loads(await load.line(60)) for load in loads]
        for probe in probes:
            await probe.close()
    finally:
        for load in loads:
            if load.process.returncode is None:
                load.process.terminate()
            await load.finish()
        await relay.close()
    return summarize(
        mode,
        settings,
        elapsed,
        ready=ready,
        counts=counts,
        relay_cpu=[a - b for a, b in zip(cpu_after, cpu_before, strict=True)],
        load_cpu=[a - b for a, b in zip(load_cpu_after, load_cpu_before, strict=True)],
        relay_before=relay_before,
        relay_after=relay_after,
        rss=rss,
    )


# Above this, a run measured a relay that does not carry its load: no figure.
MAX_LOSS_PCT = 1.0
# Modes whose relay counts the packets it receives and sends (the others count frames).
COUNTING_MODES = ("rtp", "minimal")


def summarize(
    mode: str,
    settings: BenchSettings,
    elapsed: float,
    *,
    ready: list[str],
    counts: list[dict[str, Any]],
    relay_cpu: list[float],
    load_cpu: list[float],
    relay_before: list[dict[str, Any]],
    relay_after: list[dict[str, Any]],
    rss: list[float],
) -> dict[str, Any]:
    """One mode's figures; the headline only from what the relay itself counted, and only
    when every stream flowed with loss under `MAX_LOSS_PCT` (else `result` is FAILED)."""
    sent = sum(c["sent"] for c in counts)
    received = sum(c["received"] for c in counts)
    cpu = sum(relay_cpu)
    counting = mode in COUNTING_MODES
    e2e = [c for c in counts if c["latency_ms_p50"] is not None]

    def relay_delta(key: str) -> int:
        return sum(
            a.get(key, 0) - b.get(key, 0) for a, b in zip(relay_after, relay_before, strict=True)
        )

    def worst(key: str) -> float | None:
        values = [s[key] for s in relay_after if s.get(key) is not None]
        return max(values) if values else None

    def load_total(key: str) -> int:
        return sum(c.get(key, 0) for c in counts)

    relay_in = relay_delta("packets_in") if counting else None
    relay_out = relay_delta("packets_out") if counting else None
    # Packets in flight when counting starts can only be counted as extra.
    loss_pct = round(100 * max(0, sent - received) / sent, 3) if sent else None
    failures: list[str] = []
    if not all(word == "ready" for word in ready):
        failures.append("not every stream flowed before the measurement")
    if not sent or not received:
        failures.append("nothing flowed during the measurement")
    elif loss_pct is not None and loss_pct > MAX_LOSS_PCT:
        failures.append(f"loss {loss_pct} % over {MAX_LOSS_PCT} %")
    if counting and not relay_in:
        failures.append("the relay counted no packet in")
    if not cpu:
        failures.append("no relay CPU time was measured")
    ok = not failures
    relay_packets = (relay_in or 0) + (relay_out or 0)
    per_core = round(relay_packets / cpu) if ok and counting and cpu else None
    return {
        "mode": mode,
        "result": "ok" if ok else "FAILED",
        "failed_because": failures,
        "consultations": settings.consultations,
        "seconds": round(elapsed, 2),
        "relay_workers": settings.workers,
        "receiver_loss_pct": settings.receiver_loss,
        "flowing": all(word == "ready" for word in ready),
        # The headline: the relay's own counts in and out per second of relay CPU.
        "packets_per_s_per_relay_core": per_core,
        "relay_cpu_us_per_packet": round(1e6 * cpu / relay_packets, 2)
        if ok and counting and relay_packets
        else None,
        "relay_packets_in_per_s": round(relay_in / elapsed) if relay_in is not None else None,
        "relay_packets_out_per_s": round(relay_out / elapsed) if relay_out is not None else None,
        "clients_sent_per_s": round(sent / elapsed),
        "clients_received_per_s": round(received / elapsed),
        "relay_cpu_s_per_s": round(cpu / elapsed, 3),
        "relay_cpu_s_per_s_per_worker": [round(c / elapsed, 3) for c in relay_cpu],
        "loss_pct": loss_pct,
        "received_minus_sent": received - sent,
        "repair": {
            "dropped_on_purpose": load_total("dropped_on_purpose"),
            "gaps_seen": load_total("gaps"),
            "nacked": load_total("nacked"),
            "repaired": load_total("repaired"),
            "duplicates": load_total("duplicates"),
            "relay_retransmitted": relay_delta("retransmitted") if counting else None,
        },
        "rtcp": {
            "receiver_feedback_sent": load_total("feedback_rtcp_sent"),
            "sender_reports_sent": load_total("sender_reports_sent"),
            "per_s": round(
                (load_total("feedback_rtcp_sent") + load_total("sender_reports_sent")) / elapsed
            ),
        },
        "keyframe_requests_per_s": round(load_total("keyframe_requests") / elapsed, 1),
        "relay_counters": {
            key: relay_delta(key) for key in relay_after[0] if isinstance(relay_after[0][key], int)
        },
        # From the sender's stamp to the relay's last copy sent (kernel queues included).
        "relay_latency_ms_p50": worst("latency_ms_p50") if counting else None,
        "relay_latency_ms_p99": worst("latency_ms_p99") if counting else None,
        "e2e_latency_ms_p50": max(c["latency_ms_p50"] for c in e2e) if counting and e2e else None,
        "e2e_latency_ms_p90": max(c["latency_ms_p90"] for c in e2e) if counting and e2e else None,
        "e2e_latency_ms_p99": max(c["latency_ms_p99"] for c in e2e) if counting and e2e else None,
        "relay_peak_rss_mb": max(rss) if rss else None,
        "load_cpu_s_per_s": round(sum(load_cpu) / elapsed, 3),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def compare(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Relay CPU per packet of each baseline, as a multiple of the first mode's.

    Per packet the relay counted where both modes count packets (rtp, minimal);
    per packet the clients counted otherwise (said in `counted_by`). No ratio
    where either run FAILED.
    """
    first = results[0]

    def cost(result: dict[str, Any]) -> tuple[float, str] | None:
        if result["result"] != "ok":
            return None
        if result["relay_cpu_us_per_packet"] is not None:
            return result["relay_cpu_us_per_packet"], "relay"
        packets = result["clients_sent_per_s"] + result["clients_received_per_s"]
        return (1e6 * result["relay_cpu_s_per_s"] / packets, "clients") if packets else None

    base = cost(first)
    ratios: dict[str, float | None] = {}
    counted_by: dict[str, str] = {}
    for result in results[1:]:
        other = cost(result)
        if base is None or other is None:
            ratios[result["mode"]] = None
            continue
        both = "relay" if base[1] == other[1] == "relay" else "clients"
        if both == "clients" and base[1] == "relay":
            packets = first["clients_sent_per_s"] + first["clients_received_per_s"]
            base_cost = 1e6 * first["relay_cpu_s_per_s"] / packets if packets else 0.0
        else:
            base_cost = base[0]
        ratios[result["mode"]] = round(other[0] / base_cost, 2) if base_cost else None
        counted_by[result["mode"]] = both
    minimal = ratios.get("minimal")
    return {
        "comparison": first["mode"],
        "relay_cpu_per_packet_vs_" + first["mode"]: ratios,
        "counted_by": counted_by,
        # The goal reads the other way round: rtp's cost over the floor.
        "rtp_over_minimal": round(1 / minimal, 2) if first["mode"] == "rtp" and minimal else None,
        "loss_pct": {r["mode"]: r["loss_pct"] for r in results},
        "result": {r["mode"]: r["result"] for r in results},
    }


def headline(result: dict[str, Any]) -> str:
    """One plain line per mode: the figure, or FAILED and why."""
    mode = result["mode"]
    load = " ".join(str(x) for x in result["load_average"])
    if result["result"] != "ok":
        return f"{mode}: FAILED ({'; '.join(result['failed_because'])}), load average {load}"
    if result["packets_per_s_per_relay_core"] is None:
        return (
            f"{mode}: {result['relay_cpu_s_per_s']} relay cores, loss {result['loss_pct']} % "
            f"(this mode counts frames, not packets: no per-packet headline), load average {load}"
        )
    return (
        f"{mode}: {result['packets_per_s_per_relay_core']:,} packets/s per relay core "
        f"({result['relay_cpu_us_per_packet']} us CPU per packet, relay-counted "
        f"{result['relay_packets_in_per_s']:,} in + {result['relay_packets_out_per_s']:,} out/s), "
        f"loss {result['loss_pct']} %, repaired {result['repair']['repaired']}, "
        f"relay latency p50/p99 {result['relay_latency_ms_p50']}/{result['relay_latency_ms_p99']}"
        f" ms, load average {load}"
    )
