"""The base of our Socket.IO namespaces (`/` and `/desk`): every event answers through its ack.

An event's handler takes the connection's session and the event's data and
returns `{"ok": true, ...}`; whatever it raises becomes `{"ok": false, "error":
{"code", "message"}}` through the error table (signalling/errors.py). A bug
answers `internal_error` and is logged with the event's name and the
subclass's `describe(session)`, which names no person.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

import socketio

from signalling import errors
from signalling.clock import Clock

S = TypeVar("S")
Ack = dict[str, Any]
Handler = Callable[[S, Any], Awaitable[Ack]]

logger = logging.getLogger(__name__)


def ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


def refusal(failure: errors.Failure, **extra: Any) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connection: the client's `connect_error` gets `{code, message, **extra}`."""
    return socketio.exceptions.ConnectionRefusedError(
        failure.message, {"code": failure.code, "message": failure.message, **extra}
    )


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `per_minute` of one event per `rate_key`, else `rate_limited` with `message`."""

    per_minute: int
    message: str


class RateLimit:
    """At most `per_minute` events per key in any rolling minute (keys forgotten when idle)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, list[datetime]] = {}

    def allow(self, key: str, now: datetime) -> bool:
        recent = [t for t in self._seen.get(key, ()) if (now - t).total_seconds() < 60]
        if len(recent) >= self.per_minute:
            self._seen[key] = recent
            return False
        recent.append(now)
        self._seen[key] = recent
        if len(self._seen) > 10_000:
            # Bounded memory: drop keys with nothing in the last minute.
            self._seen = {k: v for k, v in self._seen.items() if (now - v[-1]).total_seconds() < 60}
        return True


class AckNamespace(socketio.AsyncNamespace, Generic[S]):  # type: ignore[misc]
    """A namespace whose events (other than connect and disconnect) are `Handler`s.

    Subclasses give the handlers by event name, say who a connection is
    (`session_of`), and optionally limit events.
    """

    # How log lines name the namespace.
    label: ClassVar[str] = "socket"

    def __init__(
        self,
        namespace: str,
        clock: Clock,
        handlers: Mapping[str, Handler[S]],
        limits: Mapping[str, Limit] | None = None,
    ) -> None:
        super().__init__(namespace)
        self.clock = clock
        self._handlers = dict(handlers)
        self._limits = {
            event: (RateLimit(limit.per_minute), limit.message)
            for event, limit in (limits or {}).items()
        }

    async def session_of(self, sid: str) -> S | None:
        """Who `sid` is, None if it never authenticated; raise to refuse its events."""
        raise NotImplementedError

    def rate_key(self, session: S) -> str:
        """What the limits count per (one participant, one desk)."""
        raise NotImplementedError

    def failure_of(self, exc: Exception) -> errors.Failure | None:
        """The error table's answer (a namespace may word token errors for its own links)."""
        return errors.failure_of(exc)

    def describe(self, session: S) -> str:
        """How a failed event's log line names the connection: no personal data."""
        return ""

    async def trigger_event(self, event: str, *args: Any) -> Any:
        handler = self._handlers.get(event)
        if handler is not None:
            sid, data = args[0], (args[1] if len(args) > 1 else None)
            return await self._answer(event, handler, sid, data)
        if hasattr(self, f"on_{event}"):
            # connect, disconnect: python-socketio's `on_<event>` methods.
            return await super().trigger_event(event, *args)
        # No such event: no ack at all, as for an event nobody registered.
        return self.server.not_handled

    async def _answer(self, event: str, handler: Handler[S], sid: str, data: Any) -> Ack:
        session: S | None = None
        try:
            session = await self.session_of(sid)
            if session is None:
                return errors.NOT_CONNECTED.ack()
            limit = self._limits.get(event)
            if limit is not None and not limit[0].allow(self.rate_key(session), self.clock()):
                return errors.failure("rate_limited", limit[1]).ack()
            return await handler(session, data)
        except Exception as exc:
            failure = self.failure_of(exc)
            if failure is None:
                context = "" if session is None else self.describe(session)
                logger.exception("%s event=%s %s failed", self.label, event, context)
                failure = errors.INTERNAL_ERROR
            return failure.ack()
