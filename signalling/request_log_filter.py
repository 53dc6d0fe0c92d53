"""What aiohttp logs of a malformed request: one short line, never the client's bytes.

aiohttp logs each request it cannot parse at ERROR with a traceback that
quotes the offending bytes (a header line, 8 KiB of a URL) and, in some
versions, the client's address. Those bytes are the client's, possibly
personal data, and an attacker can send as many as they like: the line is
replaced by the error's name and HTTP status, at most once per interval, with
a count of those left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

INTERVAL = 10.0


class BadRequestLogFilter(logging.Filter):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.last_logged: float | None = None
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Error handling request"):
            return True
        error = record.exc_info[1] if record.exc_info else None
        now = self.clock()
        if self.last_logged is not None and now - self.last_logged < INTERVAL:
            self.suppressed += 1
            return False
        self.last_logged = now
        if isinstance(error, HttpProcessingError):
            what = f"{type(error).__name__} (HTTP {error.code})"
        else:
            what = type(error).__name__ if error is not None else "unknown error"
        more = f"; {self.suppressed} more since the last line" if self.suppressed else ""
        self.suppressed = 0
        record.msg, record.args = f"malformed request refused: {what}{more}", ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        # Parsing errors are the client's doing, not the server's.
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
