"""`teleconsult bench relay` works: a short run, correctness only (no speed asserted)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)  # Beyond the run's own 240 s limit, which says more.
async def test_bench_relay_forwards_every_packet_on_loopback() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "bench",
        "relay",
        "--consultations",
        "2",
        "--seconds",
        "3",
        "--warmup",
        "1",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, stderr.decode()[-3000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])

    assert result["mode"] == "rtp"
    assert result["consultations"] == 2
    assert result["flowing"] is True
    # Two calls, each way: ~150 video + 50 audio packets/s per participant.
    assert result["packets_in_per_s"] > 600, result
    assert result["relay_counted_in_per_s"] > 600, result
    # Nothing lost on loopback (packets in flight at the window edges can only
    # add to what is received, never hide more than a handful of losses).
    assert result["received_minus_sent"] >= 0, result
    assert result["loss_pct"] == 0.0, result
    for key in ("relay_cpu_s_per_s", "relay_peak_rss_mb", "relay_latency_ms_p99"):
        assert (result[key] or 0) > 0, (key, result)
    assert result["e2e_latency_ms_p99"] is not None, result
