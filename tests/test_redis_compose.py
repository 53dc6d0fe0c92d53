"""docker-compose.yml stays runnable: every command exists and its settings are accepted.

No Docker engine is needed: the teleconsult commands are parsed by the real CLI
parser, the environment by the real settings reader, and Redis's command line
is started with the real redis-server.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml  # type: ignore[import-untyped]

from signalling.cli import _parser
from signalling.config import settings_from_env
from tests.support.coturn_server import PRODUCTION_CONFIG
from tests.support.polling import eventually_blocking
from tests.support.redis_server import free_port, require_redis_server

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
PLACEHOLDERS = {
    "TELECONSULT_PUBLIC_URL": "https://visio.example.org",
    "TELECONSULT_TOKEN_SECRET": "s" * 48,
    "TELECONSULT_WEBHOOK_SECRET": "whsec_" + "a" * 44,
    "TELECONSULT_TURN_SECRET": "turn-secret-" + "x" * 24,
    "TELECONSULT_TURN_URLS": "turn:turn.example.org:3478?transport=udp",
    "TELECONSULT_RELAY_SECRET": "relay-secret-" + "r" * 32,
}


def interpolate(value: str) -> str:
    # ${NAME:?message} (required), ${NAME:-default} and ${NAME}: what `docker compose`
    # substitutes from .env; optional settings are left empty, as in .env.example.
    def substitute(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if operator == ":-":
            return PLACEHOLDERS.get(name, rest)
        return PLACEHOLDERS[name]

    return re.sub(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}", substitute, value)


def documented_settings() -> set[str]:
    """TELECONSULT_* variables of the README's configuration table."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Layout")]
    return set(re.findall(r"`(TELECONSULT_[A-Z0-9_]+)`", table))


def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = compose["services"]
    return found


def built_here(service: dict[str, Any]) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build["context"] == "."


def ours(command: str) -> dict[str, Any]:
    found = {
        name: s for name, s in services().items() if built_here(s) and s["command"][1] == command
    }
    return found


def test_teleconsult_services_run_existing_cli_commands_with_valid_settings() -> None:
    everything = {name: s for name, s in services().items() if built_here(s)}
    assert set(everything) == set(ours("serve")) | set(ours("relay"))
    assert len(ours("serve")) == 2, "two signalling nodes"
    assert len(ours("relay")) == 2, "two relay nodes"
    for name, service in ours("serve").items():
        command = [interpolate(part) for part in service["command"]]
        assert command[0] == "teleconsult", name
        args = _parser().parse_args(command[1:])  # exits (fails the test) on unknown flags
        environment = {k: interpolate(str(v)) for k, v in service["environment"].items()}
        assert all(k.startswith("TELECONSULT_") for k in environment), name
        settings = settings_from_env(
            environment, host=args.host, port=args.port, redis_url=args.redis_url
        )
        assert settings.redis_url is not None, f"{name} does not use Redis"
        assert settings.turn_secret == PLACEHOLDERS["TELECONSULT_TURN_SECRET"]
        assert settings.relay_secret == PLACEHOLDERS["TELECONSULT_RELAY_SECRET"], name
        assert not settings.secrets_generated, f"{name} would run on throwaway secrets"
        assert str(settings.port) in " ".join(service["healthcheck"]["test"]), name
    ports = [s["command"][s["command"].index("--port") + 1] for s in ours("serve").values()]
    assert len(set(ports)) == 2, "two nodes on one host need two ports"


def test_env_example_lists_every_variable_compose_needs() -> None:
    text = COMPOSE.read_text()
    passed = set(re.findall(r"\$\{(\w+)", text))
    listed = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert passed == listed
    assert set(re.findall(r"\$\{(\w+):\?", text)) == set(PLACEHOLDERS), "required settings"


def test_compose_passes_every_documented_setting_to_the_signalling_nodes() -> None:
    # Listen address and port are per node, on each command line.
    per_node = {"TELECONSULT_HOST", "TELECONSULT_PORT"}
    for name, service in ours("serve").items():
        missing = documented_settings() - per_node - set(service["environment"])
        assert not missing, f"{name} does not pass {sorted(missing)} through from .env"


@pytest.mark.slow
async def test_relay_services_start_a_real_relay_node_that_passes_its_healthcheck(
    redis_url: str, tmp_path: Path
) -> None:
    listens = set()
    for name, service in ours("relay").items():
        command = [interpolate(part) for part in service["command"]]
        args = _parser().parse_args(command[1:])
        environment = {k: interpolate(str(v)) for k, v in service["environment"].items()}
        assert environment["TELECONSULT_REDIS_URL"].startswith("redis://"), name
        listens.add(args.listen)
        # The node's command line, on a free port and the test Redis.
        port = free_port()
        argv = [a.replace(args.listen, f"127.0.0.1:{port}") for a in command[1:]]
        environment["TELECONSULT_REDIS_URL"] = redis_url
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signalling.cli",
            *argv,
            env={**os.environ, **environment},
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=(tmp_path / f"{name}.log").open("wb"),
        )
        try:
            assert process.stdout is not None
            async with asyncio.timeout(30):
                assert b"ready" in await process.stdout.readline(), name
            check = service["healthcheck"]["test"]
            assert check[:3] == ["CMD", "python", "-c"]
            probe = check[3].replace(args.listen.rsplit(":", 1)[1], str(port))
            assert str(port) in probe
            for _ in range(3):
                healthy = await asyncio.create_subprocess_exec(sys.executable, "-c", probe)
                assert await healthy.wait() == 0, f"{name}: healthcheck failed"
        finally:
            process.terminate()
            await process.wait()
        # Docker probes every 10 s: a probe is not an incident worth a warning.
        log = (tmp_path / f"{name}.log").read_text()
        assert "WARNING" not in log, log
    assert len(listens) == 2, "two relay nodes on one host need two ports"


def start_compose_redis(args: list[str], data: Path) -> tuple[subprocess.Popen[bytes], Any]:
    args = list(args)
    # A temporary directory stands for the container's /data volume.
    args[args.index("--dir") + 1] = str(data)
    process = subprocess.Popen(
        [require_redis_server(), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=int(args[args.index("--port") + 1]), decode_responses=True)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError("redis-server refused the compose command line")
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    eventually_blocking(answers, interval=0.05, what="redis-server started")
    return process, client


def test_the_redis_command_line_keeps_rooms_across_a_restart(tmp_path: Path) -> None:
    command = services()["redis"]["command"]
    assert command[0] == "redis-server"
    args = [str(part) for part in command[1:]]
    args[args.index("--port") + 1] = str(free_port())
    assert services()["redis"]["volumes"] == ["redis-data:/data"]
    assert args[args.index("--dir") + 1] == "/data"
    process, client = start_compose_redis(args, tmp_path)
    try:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.set("teleconsult:room:kept", "1")
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
    process, client = start_compose_redis(args, tmp_path)
    try:
        assert client.get("teleconsult:room:kept") == "1", "the append-only file was not replayed"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def test_coturn_uses_the_hardened_config_and_the_shared_secret() -> None:
    coturn = services()["coturn"]
    command = [interpolate(part) for part in coturn["command"]]
    assert command[:2] == ["-c", "/etc/coturn/turnserver.conf"]
    assert f"--static-auth-secret={PLACEHOLDERS['TELECONSULT_TURN_SECRET']}" in command
    mounted = {volume.split(":")[0]: volume.split(":")[1] for volume in coturn["volumes"]}
    assert (REPO / mounted["./turn/turnserver.conf"].replace("/etc/coturn", "turn")).exists()
    assert (REPO / "turn" / "turnserver.conf") == PRODUCTION_CONFIG


def test_images_are_the_official_ones_unless_env_names_local_ones() -> None:
    build = services()["signalling-1"]["build"]
    dockerfile = (REPO / "Dockerfile").read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert default is not None
    assert "FROM ${PYTHON_IMAGE}" in dockerfile
    assert interpolate(build["args"]["PYTHON_IMAGE"]) == default.group(1)
    assert build["args"]["PYTHON_IMAGE"] == "${TELECONSULT_PYTHON_IMAGE:-" + default.group(1) + "}"
    assert interpolate(services()["redis"]["image"]) == "redis:7-bookworm"
    assert interpolate(services()["coturn"]["image"]) == "coturn/coturn:4.6"


def test_the_image_gets_every_package_and_the_web_client() -> None:
    # .dockerignore is the allow-list of what the Dockerfile's `COPY . .` copies.
    allowed = {
        line[1:]
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["packages"])
    assert packages | {"pyproject.toml", "README.md", "web_client"} <= allowed
    assert "COPY . ." in (REPO / "Dockerfile").read_text()
