"""The relay benchmark's verdict: a figure only from what the relay counted, FAILED otherwise."""

from __future__ import annotations

from typing import Any

from bench.relay_bench import BenchSettings, compare, headline, summarize
from media.latency import LatencyHistogram

SETTINGS = BenchSettings(consultations=2, seconds=10.0, receiver_loss=0.5)


def _run(
    *,
    sent: int = 10_000,
    received: int = 10_000,
    relay_in: int = 10_000,
    relay_out: int = 10_000,
    ready: str = "ready",
    cpu: float = 1.0,
    mode: str = "rtp",
) -> dict[str, Any]:
    count = {
        "sent": sent,
        "received": received,
        "keyframe_requests": 0,
        "latency_ms_p50": 0.2,
        "latency_ms_p90": 0.3,
        "latency_ms_p99": 0.5,
    }
    before = {"packets_in": 0, "packets_out": 0, "latency_ms_p50": None}
    after = {"packets_in": relay_in, "packets_out": relay_out, "latency_ms_p50": 0.1}
    return summarize(
        mode,
        SETTINGS,
        10.0,
        ready=[ready],
        counts=[count],
        relay_cpu=[cpu],
        load_cpu=[1.0],
        relay_before=[before],
        relay_after=[after],
        rss=[80.0],
    )


def test_the_headline_comes_from_the_relays_own_counts() -> None:
    # Clients claim far more than the relay saw: the figure follows the relay.
    result = _run(sent=10_000, received=10_000, relay_in=5_000, relay_out=5_000, cpu=0.5)
    assert result["result"] == "ok"
    assert result["packets_per_s_per_relay_core"] == 20_000
    assert result["relay_cpu_us_per_packet"] == 50.0
    assert "20,000 packets/s per relay core" in headline(result)


def test_loss_over_one_percent_fails_with_no_figure() -> None:
    result = _run(received=9_800)
    assert result["loss_pct"] == 2.0
    assert result["result"] == "FAILED"
    assert result["packets_per_s_per_relay_core"] is None
    assert result["relay_cpu_us_per_packet"] is None
    line = headline(result)
    assert "FAILED" in line
    assert "loss 2.0 %" in line
    assert "packets/s" not in line


def test_streams_that_never_all_flowed_fail() -> None:
    result = _run(ready="not-flowing")
    assert result["result"] == "FAILED"
    assert result["packets_per_s_per_relay_core"] is None


def test_nothing_flowing_fails_rather_than_printing_a_huge_figure() -> None:
    result = _run(sent=10_000, received=0, relay_in=0, relay_out=0, cpu=0.01)
    assert result["result"] == "FAILED"
    assert result["packets_per_s_per_relay_core"] is None
    assert "nothing flowed" in " ".join(result["failed_because"])


def test_no_ratio_against_a_failed_run() -> None:
    ok = _run()
    failed = _run(received=5_000, mode="minimal")
    comparison = compare([ok, failed])
    assert comparison["relay_cpu_per_packet_vs_rtp"] == {"minimal": None}
    assert comparison["rtp_over_minimal"] is None
    good = compare([ok, _run(mode="minimal", cpu=0.8)])
    assert good["rtp_over_minimal"] == 1.25


def test_the_latency_histogram_reaches_two_seconds() -> None:
    histogram = LatencyHistogram()
    for _ in range(98):
        histogram.record(0.000_5)
    histogram.record(1.5)
    histogram.record(1.9)
    assert histogram.percentile_ms(0.5) == 0.505
    p99 = histogram.percentile_ms(0.99)
    assert p99 is not None
    assert 1_499 < p99 < 1_501
    beyond = LatencyHistogram()
    beyond.record(3.0)
    assert beyond.percentile_ms(0.99) == 3000.0
