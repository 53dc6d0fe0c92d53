"""The server runs on its declared dependencies alone: no benchmark, no test support, no extras."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# What only `bench` (and the synthetic participants of the tests) may import.
EXTRAS_ONLY = ("bench", "tests", "cv2", "numpy", "hypothesis")

SERVER = textwrap.dedent(
    """
    import asyncio, sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"the server imported {name}")
            return None

    sys.meta_path.insert(0, Refuse())

    import signalling.cli
    from media.relay import Relay
    from media.worker import main as worker_main
    from media.relay_node_server import RelayNode
    from signalling.app import make_app
    from signalling.config import settings_from_env

    async def build():
        relay = Relay()
        app = make_app(settings_from_env(), relay=relay)
        await relay.close()
        return app

    asyncio.run(build())
    print("ok")
    """
)


def test_the_server_starts_without_bench_tests_or_extras() -> None:
    code = f"BLOCKED = {EXTRAS_ONLY!r}\n" + SERVER
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_the_aiortc_stack_is_pinned_to_the_series_the_adapter_was_written_for() -> None:
    from media.aiortc_internals import WRITTEN_FOR

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for package, series in WRITTEN_FOR.items():
        assert f"{package}=={series}.*" in project["dependencies"], package
    assert not any(d.startswith("opencv") for d in project["dependencies"])
