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
from bench.signalling_bench import add_signalling_arguments
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
    add_signalling_arguments(targets)


def run_bench(args: argparse.Namespace) -> int:
    settings = BenchSettings(
        consultations=args.consultations,
        seconds=args.seconds,
        warmup=args.warmup,
        workers=args.workers,
        load_processes=args.load_processes,
    )
    load_clip()  # encoded once here, so no codec time falls in a measurement
    results = []
    for mode in [args.mode, *[b for b in args.baseline if b != args.mode]]:
        result = asyncio.run(measure(mode, settings))
        print(json.dumps(result), flush=True)
        results.append(result)
    if len(results) > 1:
        print(json.dumps(compare(results)), flush=True)
    return 0 if all(r["flowing"] for r in results) else 1


@dataclass(frozen=True)
class BenchSettings:
    consultations: int
    seconds: float
    warmup: float = 2.0
    workers: int = 1
    load_processes: int = 1


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
    async def start(cls, sockets: list[str], first: int, count: int) -> LoadProcess:
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
            loads.append(await LoadProcess.start(sockets, first, count))
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
    sent = sum(c["sent"] for c in counts)
    received = sum(c["received"] for c in counts)
    cpu = sum(relay_cpu)
    packets_in = sent / elapsed
    packets_out = received / elapsed
    rtp = mode == "rtp"
    e2e = [c for c in counts if c["latency_ms_p50"] is not None]

    def worst(key: str) -> float | None:
        values = [s[key] for s in relay_after if s.get(key) is not None]
        return max(values) if values else None

    return {
        "mode": mode,
        "consultations": settings.consultations,
        "seconds": round(elapsed, 2),
        "relay_workers": settings.workers,
        "flowing": all(word == "ready" for word in ready),
        "packets_in_per_s": round(packets_in),
        "packets_out_per_s": round(packets_out),
        "relay_counted_in_per_s": round(
            sum(
                a["packets_in"] - b["packets_in"]
                for a, b in zip(relay_after, relay_before, strict=True)
            )
            / elapsed
        )
        if rtp
        else None,
        "relay_cpu_s_per_s": round(cpu / elapsed, 3),
        "relay_cpu_s_per_s_per_worker": [round(c / elapsed, 3) for c in relay_cpu],
        "packets_per_s_per_relay_core": round((packets_in + packets_out) / (cpu / elapsed))
        if cpu
        else None,
        # Packets in flight when counting starts can only be counted as extra.
        "loss_pct": round(100 * max(0, sent - received) / sent, 3) if sent else None,
        "received_minus_sent": received - sent,
        "keyframe_requests_per_s": round(sum(c["keyframe_requests"] for c in counts) / elapsed, 1),
        "relay_counters": {
            key: sum(a[key] - b[key] for a, b in zip(relay_after, relay_before, strict=True))
            for key in relay_after[0]
            if isinstance(relay_after[0][key], int)
        },
        "relay_latency_ms_p50": worst("latency_ms_p50") if rtp else None,
        "relay_latency_ms_p99": worst("latency_ms_p99") if rtp else None,
        "e2e_latency_ms_p50": max(c["latency_ms_p50"] for c in e2e) if rtp and e2e else None,
        "e2e_latency_ms_p90": max(c["latency_ms_p90"] for c in e2e) if rtp and e2e else None,
        "e2e_latency_ms_p99": max(c["latency_ms_p99"] for c in e2e) if rtp and e2e else None,
        "relay_peak_rss_mb": max(rss) if rss else None,
        "load_cpu_s_per_s": round(sum(load_cpu) / elapsed, 3),
        "cpu_count": os.cpu_count(),
    }


def compare(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Relay CPU per forwarded packet of each baseline, as a multiple of the first mode's."""
    first = results[0]

    def cost(result: dict[str, Any]) -> float | None:
        packets = result["packets_in_per_s"] + result["packets_out_per_s"]
        return result["relay_cpu_s_per_s"] / packets if packets else None

    base = cost(first)
    return {
        "comparison": first["mode"],
        "relay_cpu_per_packet_vs_" + first["mode"]: {
            r["mode"]: round(c / base, 2) if base and (c := cost(r)) else None for r in results[1:]
        },
        "loss_pct": {r["mode"]: r["loss_pct"] for r in results},
    }
