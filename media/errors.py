"""The relay's errors: a stable code (mapped to an ack code or HTTP status at the edge)."""

from __future__ import annotations


class MediaError(Exception):
    """A relay request refused or failed; `code` is stable (`not_in_call`, `media_failed`...)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")
