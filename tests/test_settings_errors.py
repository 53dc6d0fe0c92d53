"""Every bad setting ends `teleconsult` with one line naming it, exit code 2, no traceback."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from signalling import cli, webhook_signature
from signalling.config import settings_from_env, webhook_key
from tests.support import TOKEN_SECRET, WEBHOOK_SECRET
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[1]
BASE = {
    "TELECONSULT_TOKEN_SECRET": TOKEN_SECRET,
    "TELECONSULT_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "TELECONSULT_RELAY_WORKERS": "0",
}
WHSEC_SHORT = "whsec_" + base64.b64encode(b"x" * 8).decode()

# (environment changes, what the one line must name)
BAD_SETTINGS: dict[str, tuple[dict[str, str | None], str]] = {
    "workers_not_a_number": ({"TELECONSULT_RELAY_WORKERS": "two"}, "TELECONSULT_RELAY_WORKERS"),
    "workers_negative": ({"TELECONSULT_RELAY_WORKERS": "-1"}, "TELECONSULT_RELAY_WORKERS"),
    "port_not_a_number": ({"TELECONSULT_PORT": "eighty"}, "TELECONSULT_PORT"),
    "port_out_of_range": ({"TELECONSULT_PORT": "70000"}, "TELECONSULT_PORT"),
    "minutes_not_a_number": (
        {"TELECONSULT_NO_SHOW_AFTER_MINUTES": "ten"},
        "TELECONSULT_NO_SHOW_AFTER_MINUTES",
    ),
    "retention_not_a_number": ({"TELECONSULT_RETENTION_HOURS": "a day"}, "RETENTION_HOURS"),
    "unknown_e2ee_mode": ({"TELECONSULT_E2EE": "maybe"}, "TELECONSULT_E2EE"),
    "unknown_ice_policy": (
        {"TELECONSULT_ICE_TRANSPORT_POLICY": "turn"},
        "TELECONSULT_ICE_TRANSPORT_POLICY",
    ),
    "unknown_log_format": ({"TELECONSULT_LOG_FORMAT": "xml"}, "TELECONSULT_LOG_FORMAT"),
    "token_secret_too_short": ({"TELECONSULT_TOKEN_SECRET": "short"}, "TELECONSULT_TOKEN_SECRET"),
    "webhook_secret_too_short": ({"TELECONSULT_WEBHOOK_SECRET": WHSEC_SHORT}, "WEBHOOK_SECRET"),
    "api_key_too_short": ({"TELECONSULT_API_KEY": "k" * 10}, "TELECONSULT_API_KEY"),
    "turn_secret_too_short": (
        {"TELECONSULT_TURN_URLS": "turn:127.0.0.1:3478", "TELECONSULT_TURN_SECRET": "abc"},
        "TELECONSULT_TURN_SECRET",
    ),
    "events_secret_malformed": (
        {"TELECONSULT_EVENTS_SECRET": "whsec_***"},
        "TELECONSULT_EVENTS_SECRET",
    ),
    "token_secret_without_webhook_secret": (
        {"TELECONSULT_WEBHOOK_SECRET": None},
        "TELECONSULT_WEBHOOK_SECRET",
    ),
    "webhook_secret_without_token_secret": (
        {"TELECONSULT_TOKEN_SECRET": None},
        "TELECONSULT_TOKEN_SECRET",
    ),
}


def environment(changes: dict[str, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    env.update(BASE)
    env.setdefault("TELECONSULT_PORT", str(free_port()))
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        *args,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"teleconsult {' '.join(args)} did not stop") from None
    assert process.returncode is not None
    return process.returncode, stderr.decode()


def assert_one_line_naming(code: int, stderr: str, setting: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert setting in lines[0], lines[0]
    assert code == 2, (code, stderr)


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_every_bad_setting_gives_one_line_and_exit_code_2(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The real command line in this process: it must stop before starting anything.
    changes, setting = BAD_SETTINGS[case]
    for name in [name for name in os.environ if name.startswith("TELECONSULT_")]:
        monkeypatch.delenv(name)
    for name, value in environment(changes).items():
        if name.startswith("TELECONSULT_"):
            monkeypatch.setenv(name, value)
    # Logging set-up is global to the process: leave the test runner's own alone.
    monkeypatch.setattr(cli, "configure_logging", lambda *args: None)
    code = cli.main(["serve"])
    assert_one_line_naming(code, capsys.readouterr().err, setting)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


async def test_a_port_in_use_is_named_not_a_traceback(busy_port: int) -> None:
    code, stderr = await run_cli("serve", "--port", str(busy_port), env=environment({}))
    assert_one_line_naming(code, stderr, "TELECONSULT_PORT")
    assert str(busy_port) in stderr


async def test_a_relay_node_on_a_port_in_use_names_listen(busy_port: int, redis_url: str) -> None:
    env = environment({"TELECONSULT_RELAY_SECRET": "r" * 40})
    code, stderr = await run_cli(
        "relay", "--redis-url", redis_url, "--listen", f"127.0.0.1:{busy_port}", env=env
    )
    lines = [line for line in stderr.splitlines() if "configuration error" in line]
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert "--listen" in lines[0]


def test_an_unpadded_whsec_secret_is_accepted() -> None:
    padded = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert padded.endswith("=")
    unpadded = padded.rstrip("=")
    assert webhook_key(unpadded) == webhook_key(padded) == b"k" * 32
    settings = settings_from_env({**BASE, "TELECONSULT_WEBHOOK_SECRET": unpadded})
    assert settings.webhook_secret == unpadded


def test_events_are_signed_with_every_key_while_a_secret_rotates() -> None:
    old, new = (b"o" * 32, b"n" * 32)
    secrets_text = " ".join("whsec_" + base64.b64encode(key).decode() for key in (old, new))
    settings = settings_from_env({**BASE, "TELECONSULT_EVENTS_SECRET": secrets_text})
    assert settings.events_keys == (old, new)
    now = datetime.now(UTC)
    timestamp = str(int(now.timestamp()))
    header = webhook_signature.sign_all(settings.events_keys, "evt_1", timestamp, b"{}")
    assert len(header.split(" ")) == 2
    # A receiver holding either secret accepts the event.
    for key in (old, new):
        webhook_signature.verify(
            key,
            webhook_id="evt_1",
            timestamp=timestamp,
            signature=header,
            body=b"{}",
            now=now,
            tolerance=timedelta(minutes=5),
        )
