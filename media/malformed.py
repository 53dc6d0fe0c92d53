"""Counting malformed input instead of raising or logging it per packet.

Anyone on the network can send the relay garbage: a packet that cannot be
parsed is dropped and counted, and at most one log line per interval says
how many there were.
"""

from __future__ import annotations

import logging
import time

LOG_INTERVAL = 60.0


class MalformedCounter:
    """Drops malformed packets: counts them, logs a summary at most once per interval."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self.count = 0
        self._logged_at = 0.0
        self._logged_count = 0

    def drop(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_INTERVAL:
            self._logger.info(
                "%s: dropped %d malformed packets (%d in all)",
                self._what,
                self.count - self._logged_count,
                self.count,
            )
            self._logged_at = now
            self._logged_count = self.count
