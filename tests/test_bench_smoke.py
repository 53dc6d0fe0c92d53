"""`teleconsult bench relay` works: a short run, correctness only (no speed asserted)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def _json_lines(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]


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
        "--baseline",
        "minimal",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 240)
    # On failure the headline lines say why (FAILED and the reason), stderr the rest.
    assert process.returncode == 0, (stdout.decode()[-3000:], stderr.decode()[-3000:])
    rtp, minimal, comparison = _json_lines(stdout)
    headlines = [line for line in stdout.decode().splitlines() if not line.startswith("{")]

    assert rtp["mode"] == "rtp"
    assert minimal["mode"] == "minimal"
    assert rtp["result"] == "ok", rtp
    assert rtp["consultations"] == 2
    # Two calls, each way: ~150 video + 50 audio packets/s per participant, as the
    # relay itself counted them.
    assert rtp["relay_packets_in_per_s"] > 600, rtp
    assert rtp["relay_packets_out_per_s"] >= rtp["relay_packets_in_per_s"] * 0.99, rtp
    assert rtp["packets_per_s_per_relay_core"] > 0, rtp
    # Receivers dropped video packets on purpose and NACKed them: the relay repaired them.
    repair = rtp["repair"]
    assert repair["dropped_on_purpose"] > 0, repair
    assert repair["repaired"] > 0, repair
    assert repair["relay_retransmitted"] > 0, repair
    assert rtp["loss_pct"] <= 1.0, rtp
    # Receiver reports, REMB and sender reports at browser rates (about 1/s per stream).
    assert rtp["rtcp"]["sender_reports_sent"] >= 8 * 2, rtp["rtcp"]
    assert rtp["rtcp"]["receiver_feedback_sent"] >= 8 * 2, rtp["rtcp"]
    for key in ("relay_cpu_s_per_s", "relay_peak_rss_mb", "relay_latency_ms_p99"):
        assert (rtp[key] or 0) > 0, (key, rtp)
    assert rtp["e2e_latency_ms_p99"] is not None, rtp
    assert minimal["result"] == "ok", minimal
    assert comparison["rtp_over_minimal"] is not None, comparison
    assert headlines[0].startswith("rtp: ")
    assert "packets/s per relay core" in headlines[0]
