"""A private PulseAudio with null sinks, for browsers that need a sound server (Firefox).

Firefox plays remote audio and runs the page's AudioContext (the microphone
meter) through PulseAudio; without one it has no audio output at all. This
starts a per-test daemon on a Unix socket in a temp dir (a path socket, so a
browser in a network namespace reaches it too) and nothing else: no D-Bus, no
hardware, nothing persisted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.polling import eventually_blocking
from tests.support.processes import stop_process

PULSEAUDIO = os.environ.get("TELECONSULT_PULSEAUDIO", "/usr/bin/pulseaudio")


def require_pulseaudio() -> str:
    found = PULSEAUDIO if Path(PULSEAUDIO).exists() else shutil.which("pulseaudio")
    if found is None:
        raise RuntimeError(
            f"pulseaudio not found at {PULSEAUDIO}: run `make test` (it apt-get installs "
            "pulseaudio) or set TELECONSULT_PULSEAUDIO"
        )
    return found


@dataclass(frozen=True)
class SoundServer:
    socket: Path

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs to find this server."""
        return {"PULSE_SERVER": f"unix:{self.socket}"}


@contextmanager
def sound_server() -> Iterator[SoundServer]:
    executable = require_pulseaudio()
    with tempfile.TemporaryDirectory(prefix="teleconsult-pulse-") as home:
        socket = Path(home) / "native"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "XDG_RUNTIME_DIR": home}
        process = subprocess.Popen(
            [
                executable,
                "-n",  # No default.pa: only the modules below.
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--log-target=stderr",
                "--log-level=error",
                "-L",
                f"module-native-protocol-unix socket={socket} auth-anonymous=1",
                "-L",
                "module-null-sink sink_name=speakers",
                "-L",
                "module-always-sink",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:

            def listening() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(
                        "pulseaudio exited: "
                        + (process.stderr.read() if process.stderr else b"")
                        .decode(errors="replace")
                        .strip()
                    )
                return socket.exists()

            eventually_blocking(listening, timeout=10, what="pulseaudio listening")
            yield SoundServer(socket)
        finally:
            stop_process(process)
            if process.stderr:
                process.stderr.close()
