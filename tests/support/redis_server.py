"""A real redis-server for the tests: free port, temp dir, nothing written to disk."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.support.polling import eventually_blocking
from tests.support.processes import stop_process

REDIS_SERVER = os.environ.get("TELECONSULT_REDIS_SERVER", "/usr/bin/redis-server")


def require_redis_server() -> str:
    if Path(REDIS_SERVER).exists():
        return REDIS_SERVER
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            f"redis-server not found at {REDIS_SERVER}: run `make test` (it apt-get installs "
            "redis-server) or set TELECONSULT_REDIS_SERVER"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; `stop()` and `start()` again keep the same port."""

    def __init__(self) -> None:
        self.executable = require_redis_server()
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="teleconsult-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def _log(self) -> str:
        return str(Path(self._dir.name) / "redis.log")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("redis-server is already running")
        self._process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self._dir.name,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--logfile",
                self._log,
            ],
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _answers_ping(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            self._process = None
            log = Path(self._log).read_text(errors="replace") if Path(self._log).exists() else ""
            raise RuntimeError(f"redis-server exited at start:\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _wait_ready(self, timeout: float = 10.0) -> None:
        try:
            eventually_blocking(self._answers_ping, timeout=timeout, interval=0.05)
        except AssertionError:
            self.stop()
            raise RuntimeError(
                f"redis-server did not answer on port {self.port} within {timeout}s"
            ) from None

    def freeze(self) -> None:
        """Stop answering without closing connections, like a partitioned or stalled Redis."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()
