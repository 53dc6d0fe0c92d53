"""The browser's quality measures and video steps (web_client/quality.js, video-steps.js),
unit-checked by node: they are pure functions of getStats() readings and time."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "js" / "quality.test.mjs"


def test_quality_and_video_steps_in_node() -> None:
    node = shutil.which("node")
    assert node, "node is needed (make install puts nodejs on the test machine)"
    result = subprocess.run(
        [node, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout
    assert result.stdout.count("ok ") >= 10, result.stdout
