"""`teleconsult serve` as an operator runs it: demo links printed, page served."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

from aiohttp import ClientSession

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_without_secrets_prints_working_demo_links() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "serve",
        "--port",
        str(port),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        text = ""
        async with asyncio.timeout(30):
            while "practitioner link" not in text:
                line = await process.stdout.readline()
                assert line, "serve exited before printing the demo links"
                text += line.decode()
        links = dict(re.findall(r"(patient|practitioner) link:\s+(\S+)", text))
        for link in links.values():
            assert link.startswith(f"http://127.0.0.1:{port}/c/")
            assert "#" in link
            assert "?" not in link
        async with ClientSession() as session:
            async with session.get(links["patient"].split("#")[0]) as page:
                assert page.status == 200
                assert "text/html" in page.headers["content-type"]
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert await health.json() == {"status": "ok"}
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    # Logs carry no token.
    token = links["patient"].split("#", 1)[1]
    assert token not in stderr.decode()
    assert "generated throwaway secrets" in stderr.decode()


async def test_bad_configuration_is_refused_with_a_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_")}
    env["TELECONSULT_WEBHOOK_SECRET"] = "not-a-whsec"
    env["TELECONSULT_TOKEN_SECRET"] = "x" * 40
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signalling.cli",
        "serve",
        "--port",
        str(free_port()),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "TELECONSULT_WEBHOOK_SECRET" in stderr.decode()
