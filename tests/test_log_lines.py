"""`TELECONSULT_LOG_FORMAT=json`: one JSON object a line, from serve and from relay workers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from logs.line_format import JsonFormatter, log_format_from_env

REPO = Path(__file__).resolve().parents[1]


def test_a_record_is_one_json_object_with_the_usual_fields() -> None:
    record = logging.LogRecord(
        "media.worker", logging.WARNING, __file__, 1, "room=%s", ("r1",), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert set(line) == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING",
        "media.worker",
        "room=r1",
    )


def test_the_setting_takes_text_or_json_only() -> None:
    assert log_format_from_env({}) == "text"
    assert log_format_from_env({"TELECONSULT_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ValueError, match="TELECONSULT_LOG_FORMAT"):
        log_format_from_env({"TELECONSULT_LOG_FORMAT": "xml"})


@pytest.mark.slow
async def test_a_relay_worker_inherits_the_json_format(tmp_path: Path) -> None:
    socket_path = tmp_path / "worker.sock"
    env = {**os.environ, "TELECONSULT_LOG_FORMAT": "json"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "media.worker", "--socket", str(socket_path), "--log-level", "INFO",
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        # A line that is not the worker protocol: the worker logs that the link ended.
        _, writer = await asyncio.open_unix_connection(str(socket_path))
        writer.write(b"not json\n")
        await writer.drain()
        assert process.stderr is not None
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        writer.close()
    finally:
        process.terminate()
        await process.wait()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "media.worker_server"
