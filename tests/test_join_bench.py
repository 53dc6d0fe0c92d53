"""`teleconsult bench join`: a short real run, and its verdict (no speed asserted)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from bench.join_bench import headline, summarize

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_bench_join_prints_both_sides_and_the_floor() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "bench",
        "join",
        "--runs",
        "1",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 170)
    assert process.returncode == 0, (stdout.decode()[-2000:], stderr.decode()[-2000:])
    first, last = stdout.decode().strip().splitlines()[-2:]
    result = json.loads(first)
    assert result["result"] == "ok"
    assert result["e2ee"] == "required"
    assert result["runs"] == 1
    for key in ("floor_ms_median", "patient_ms_median", "practitioner_ms_median"):
        assert result[key] > 0, (key, result)
    assert result["ratio_to_floor"] > 0
    assert "floor" in last
    assert "load average" in last


def test_a_run_without_frames_is_failed_with_no_figures() -> None:
    result = summarize([120.0], [], ["run 0: TimeoutError: no frame"], "required")
    assert result["result"] == "FAILED"
    assert result["ratio_to_floor"] is None
    assert result["patient_ms_median"] is None
    line = headline(result)
    assert "FAILED" in line
    assert "no frame" in line
    assert "ms" not in line.split("FAILED", 1)[0]


def test_the_ratio_is_the_slower_side_over_the_floor() -> None:
    joins = [{"patient_ms": 200.0, "practitioner_ms": 300.0}] * 3
    result = summarize([100.0, 120.0, 110.0], joins, [], "required")
    assert result["result"] == "ok"
    assert result["floor_ms_median"] == 110.0
    assert result["ratio_to_floor"] == round(300.0 / 110.0, 2)
    assert "OVER" in headline(result)
