"""Log lines as text (default) or one JSON object a line (`TELECONSULT_LOG_FORMAT=json`).

The same fields and the same privacy rule either way: messages carry random
room and entry ids, never names, tokens, keys or client addresses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from signalling.config import ConfigError

LOG_FORMATS = ("text", "json")


def log_format_from_env(env: Mapping[str, str]) -> str:
    value = (env.get("TELECONSULT_LOG_FORMAT") or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigError("TELECONSULT_LOG_FORMAT must be `text` or `json`")
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
