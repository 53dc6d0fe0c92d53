"""`teleconsult bench signalling` works: a small run prints figures, a broken one FAILED."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


async def bench(*arguments: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "bench",
        "signalling",
        *arguments,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 150)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.timeout(180)
async def test_a_small_queue_prints_every_figure() -> None:
    status, out, err = await bench("--patients", "30", "--per-practitioner", "10", "--rate", "60")
    assert status == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["patients"] == 30
    assert result["practitioners"] == 3
    for figure in (
        "check_in_ms_p50",
        "check_in_ms_p95",
        "check_in_ms_p99",
        "server_cpu_ms_per_check_in",
        "message_to_all_ms_p95",
        "desk_delta_bytes_median",
    ):
        assert result[figure] > 0, (figure, result)
    assert result["check_in_ms_p50"] <= result["check_in_ms_p95"] <= result["check_in_ms_p99"]
    # Each patient told their place once (once more if the minute of the expected starts
    # turned meanwhile); the desks heard of every check-in in deltas.
    assert 30 <= result["sent_to_screens_messages"]["waiting"] <= 60
    assert 3 <= result["sent_to_screens_messages"]["desk_delta"] <= 30
    assert len(result["load_average_before"]) == 3


@pytest.mark.timeout(180)
async def test_a_run_that_does_not_hear_everything_prints_failed_and_no_figures() -> None:
    # Nothing can be heard within no time at all: the run must say so, not print figures.
    status, out, err = await bench("--patients", "10", "--per-practitioner", "5", "--wait", "0")
    assert status == 1, err[-3000:]
    assert out.startswith("FAILED: ")
    assert "never reached the desk" in out
    assert "check_in_ms" not in out


async def test_out_of_bounds_arguments_are_refused() -> None:
    status, _, err = await bench("--patients", "5001")
    assert status == 2
    assert "--patients must be between 1 and 5000" in err
