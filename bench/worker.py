"""The benchmark's relay worker: `media.worker` with the baseline forwarding modes installed.

python -m bench.worker --socket PATH --mode frames
"""

from __future__ import annotations

import sys

from bench.baseline_modes import MODES
from media.worker import main

if __name__ == "__main__":
    sys.exit(main(modes=MODES, prog="python -m bench.worker"))
