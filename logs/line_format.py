"""Log lines as text (default) or one JSON object a line (`TELECONSULT_LOG_FORMAT=json`).

The same fields and the same privacy rule either way: messages carry random
room and entry ids, never names, tokens, keys or client addresses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

LOG_FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# aiortc and aioice log peer IP addresses below WARNING: personal data.
QUIETED = ("aiortc", "aioice")


def log_format_from_env(env: Mapping[str, str]) -> str:
    """`text` or `json`; ValueError naming the setting for anything else."""
    value = (env.get("TELECONSULT_LOG_FORMAT") or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError("TELECONSULT_LOG_FORMAT must be `text` or `json`")
    return value


def configure(level: str, log_format: str = "text") -> None:
    """The root logger of this process, in the chosen format; peer addresses kept out."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for noisy in QUIETED:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def configure_child(level: str, env: Mapping[str, str]) -> None:
    """A relay worker: the format its parent checked, inherited through the environment."""
    try:
        log_format = log_format_from_env(env)
    except ValueError:
        log_format = "text"
    configure(level, log_format)


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
