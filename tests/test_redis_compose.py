"""docker-compose.yml stays runnable: every command exists and its settings are accepted.

No Docker engine is needed: the teleconsult commands are parsed by the real CLI
parser, the environment by the real settings reader, and Redis's command line
is started with the real redis-server.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
import yaml  # type: ignore[import-untyped]

from signalling.cli import _parser
from signalling.config import settings_from_env
from tests.coturn_server import PRODUCTION_CONFIG
from tests.redis_server import free_port, require_redis_server

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
PLACEHOLDERS = {
    "TELECONSULT_PUBLIC_URL": "https://visio.example.org",
    "TELECONSULT_TOKEN_SECRET": "s" * 48,
    "TELECONSULT_WEBHOOK_SECRET": "whsec_" + "a" * 44,
    "TELECONSULT_TURN_SECRET": "turn-secret-" + "x" * 24,
    "TELECONSULT_TURN_URLS": "turn:turn.example.org:3478?transport=udp",
}


def interpolate(value: str) -> str:
    # ${NAME:?message} and ${NAME}: what `docker compose` substitutes from .env.
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: PLACEHOLDERS[m.group(1)], value)


def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = compose["services"]
    return found


def test_teleconsult_services_run_existing_cli_commands_with_valid_settings() -> None:
    ours = {name: s for name, s in services().items() if s.get("build") == "."}
    assert ours, "no teleconsult service in docker-compose.yml"
    for name, service in ours.items():
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
        assert not settings.secrets_generated, f"{name} would run on throwaway secrets"


def test_the_redis_command_line_starts_a_real_redis_without_persistence(tmp_path: Path) -> None:
    command = services()["redis"]["command"]
    assert command[0] == "redis-server"
    args = [str(part) for part in command[1:]]
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    process = subprocess.Popen(
        [require_redis_server(), *args, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, "redis-server refused the compose command line"
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()
    finally:
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
