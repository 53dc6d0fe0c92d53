"""A real coturn for the tests: free ports, a shared secret, a temp dir for its files."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.support.polling import eventually_blocking
from tests.support.processes import stop_process
from tests.support.redis_server import free_port

TURNSERVER = os.environ.get("TELECONSULT_TURNSERVER", "/usr/bin/turnserver")
TURN_DIR = Path(__file__).resolve().parents[2] / "turn"
TEST_CONFIG = TURN_DIR / "turnserver-test.conf"
PRODUCTION_CONFIG = TURN_DIR / "turnserver.conf"


def require_turnserver() -> str:
    if Path(TURNSERVER).exists():
        return TURNSERVER
    found = shutil.which("turnserver")
    if found is None:
        raise RuntimeError(
            f"coturn's turnserver not found at {TURNSERVER}: run `make test` (it apt-get "
            "installs coturn) or set TELECONSULT_TURNSERVER"
        )
    return found


def _stun_binding_answered(port: int) -> bool:
    transaction = secrets.token_bytes(12)
    # A STUN Binding request: type 0x0001, no attributes, the RFC 5389 magic cookie.
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.3)
        try:
            probe.sendto(request, ("127.0.0.1", port))
            answer = probe.recv(2048)
        except OSError:
            return False
    return answer[:2] == b"\x01\x01" and answer[8:20] == transaction


class CoturnServer:
    """turnserver on 127.0.0.1 with `config`, overridden by ports and secret on its command line."""

    def __init__(self, config: Path = TEST_CONFIG, *extra: str) -> None:
        self.executable = require_turnserver()
        if not config.is_file():
            # coturn would start anyway on its defaults and a hardening test pass vacuously.
            raise FileNotFoundError(f"coturn configuration {config} does not exist")
        self.config = config
        self.extra = extra
        self.secret = secrets.token_urlsafe(32)
        self.port = free_port()
        # A relay port range of its own, away from the kernel's ephemeral ports.
        self.min_port = random.randrange(20000, 30000, 100)
        self.max_port = self.min_port + 99
        self._dir = tempfile.TemporaryDirectory(prefix="teleconsult-coturn-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @property
    def log_path(self) -> Path:
        return Path(self._dir.name) / "turn.log"

    def log(self) -> str:
        # --simple-log still appends the date to the name on some builds.
        return "".join(
            path.read_text(errors="replace")
            for path in sorted(Path(self._dir.name).glob("turn*.log"))
        )

    def start(self) -> None:
        directory = Path(self._dir.name)
        self._process = subprocess.Popen(
            [
                self.executable,
                "-c",
                str(self.config),
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={self.port}",
                f"--min-port={self.min_port}",
                f"--max-port={self.max_port}",
                f"--static-auth-secret={self.secret}",
                f"--userdb={directory / 'turndb'}",
                f"--pidfile={directory / 'turnserver.pid'}",
                f"--log-file={self.log_path}",
                "--simple-log",
                "--no-stdout-log",
                *self.extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            eventually_blocking(self._answers_stun, timeout=15, interval=0.1)
        except AssertionError:
            self.stop()
            raise RuntimeError(
                f"turnserver did not answer STUN on port {self.port}:\n{self.log()}"
            ) from None

    def _answers_stun(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            self._process = None
            raise RuntimeError(f"turnserver exited at start:\n{self.log()}")
        return _stun_binding_answered(self.port)

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()
