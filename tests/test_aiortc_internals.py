"""The adapter over aiortc, aioice and pylibsrtp internals finds everything it needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiortc.rtcrtpsender import RTCRtpSender

from media import aiortc_internals as internals
from media.relay import Relay


@pytest.fixture(autouse=True)
def fresh_check() -> Iterator[None]:
    internals._check.cache_clear()
    yield
    internals._check.cache_clear()


def test_the_installed_libraries_have_every_internal_the_relay_and_bench_use() -> None:
    assert internals.missing_internals(internals.RELAY_NEEDS + internals.BASELINE_NEEDS) == []
    internals.check_internals(baselines=True)
    installed = internals.installed_versions()
    for package, series in internals.WRITTEN_FOR.items():
        assert installed[package].startswith(series + "."), (package, installed[package])


def test_a_missing_internal_stops_the_relay_at_start_up_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(RTCRtpSender, "_run_rtcp")
    with pytest.raises(internals.IncompatibleMediaStack) as refused:
        Relay()
    message = str(refused.value)
    assert "RTCRtpSender._run_rtcp" in message
    assert "aiortc 1.16.*" in message
    assert "aioice 0.13.*" in message
    assert "pylibsrtp 1.0.*" in message


def test_a_missing_baseline_internal_only_stops_the_benchmark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(RTCRtpSender, "_send_keyframe")
    internals.check_internals()
    with pytest.raises(internals.IncompatibleMediaStack, match=r"RTCRtpSender\._send_keyframe"):
        internals.check_internals(baselines=True)
