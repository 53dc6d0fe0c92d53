"""Malformed requests leave one short line in the log: no client bytes, no address, no flood."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.http_exceptions import BadHttpMessage

from signalling.request_log_filter import INTERVAL, BadRequestLogFilter
from tests.support import TOKEN_SECRET, WEBHOOK_SECRET
from tests.support.polling import eventually
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[1]
GARBAGE = [
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line \xff\xfe secret-bytes\r\n\r\n",
    b"GET /" + b"A" * 10_000 + b" HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01" + b"tls-hello-bytes" * 500,
    b"POST /hooks/booking HTTP/1.1\r\nContent-Length: x-not-a-number\r\n\r\n",
]


async def send_raw(port: int, payload: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        await asyncio.wait_for(reader.read(200), 5)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()


@pytest.mark.slow
async def test_a_flood_of_malformed_requests_logs_a_line_or_two() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    env.update(
        TELECONSULT_TOKEN_SECRET=TOKEN_SECRET,
        TELECONSULT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TELECONSULT_RELAY_WORKERS="0",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signalling.cli", "serve", "--port", str(port),
        cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with ClientSession() as session:

            async def up() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                        return health.status == 200
                except OSError:
                    return False

            await eventually(up, timeout=30, what="serve answers /healthz")
            for _ in range(25):
                await asyncio.gather(*(send_raw(port, payload) for payload in GARBAGE))
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 200, "the server still serves"
    finally:
        process.terminate()
        _, stderr_bytes = await asyncio.wait_for(process.communicate(), 30)
    stderr = stderr_bytes.decode(errors="replace")
    assert "Traceback" not in stderr
    for leaked in ("secret-bytes", "AAAAAAAAAA", "tls-hello", "127.0.0.1", "x-not-a-number"):
        assert leaked not in stderr, f"{leaked!r} reached the log:\n{stderr}"
    lines = [line for line in stderr.splitlines() if "malformed request refused" in line]
    assert 1 <= len(lines) <= 2, stderr
    assert len(stderr) < 2_000, stderr


def record(error: Exception | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error is not None else None
    return logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
        ("203.0.113.9",), exc_info,
    )  # fmt: skip


def test_the_filter_says_what_failed_once_per_interval_and_counts_the_rest() -> None:
    now = [100.0]
    log_filter = BadRequestLogFilter(clock=lambda: now[0])
    first = record(BadHttpMessage("Invalid header token: b'\\xff secret'"))
    assert log_filter.filter(first)
    assert first.getMessage() == "malformed request refused: BadHttpMessage (HTTP 400)"
    assert first.exc_info is None
    assert first.levelno == logging.INFO
    for _ in range(5):
        assert not log_filter.filter(record(BadHttpMessage("again")))
    now[0] += INTERVAL
    later = record(BadHttpMessage("later"))
    assert log_filter.filter(later)
    assert later.getMessage().endswith("; 5 more since the last line")
    assert "203.0.113.9" not in later.getMessage()
