"""Storage errors: plain exceptions, mapped to HTTP statuses and ack codes at the edge."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The shared store (Redis) cannot be reached or did not answer: retry later."""
