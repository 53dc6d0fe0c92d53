"""The base of our Socket.IO namespaces (`/` and `/desk`): every event answers through its ack.

An event's handler takes the connection's session and the event's data and
returns `{"ok": true, ...}`; whatever it raises becomes `{"ok": false, "error":
{"code", "message"}}` through the error table (signalling/errors.py). A bug
answers `internal_error` and is logged with the event's name and the
subclass's `describe(session)`, which names no person.

Every event is rate-limited per connection and per link, and so are
connections per link (signalling/socket_limits.py); a connection refused for
a bad token spends its source's failed-authentication budget (auth_throttle).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import socketio

from signalling import errors, rate_limits
from signalling.auth_throttle import AuthThrottle, environ_source
from signalling.clock import Clock
from signalling.rate_limits import TokenBuckets, take_all
from signalling.socket_limits import CONNECT, CONNECT_MESSAGE, DEFAULT_LIMIT, LINK_FACTOR, Limit

S = TypeVar("S")
Ack = dict[str, Any]
Handler = Callable[[S, Any], Awaitable[Ack]]

logger = logging.getLogger(__name__)


def ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


# Refusals that say the credentials were wrong (not early, late or a busy store).
AUTH_FAILURES = frozenset({"token_missing", "token_invalid", "token_wrong_room"})


def refusal(failure: errors.Failure, **extra: Any) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connection: the client's `connect_error` gets `{code, message, **extra}`."""
    if failure.retry_after is not None:
        extra = {"retry_after": failure.retry_after, **extra}
    return socketio.exceptions.ConnectionRefusedError(
        failure.message, {"code": failure.code, "message": failure.message, **extra}
    )


def rate_limited(wait: float, message: str) -> errors.Failure:
    return errors.rate_limited(rate_limits.retry_after(wait), message)


class AckNamespace(socketio.AsyncNamespace, Generic[S]):  # type: ignore[misc]
    """A namespace whose events (other than connect and disconnect) are `Handler`s.

    Subclasses give the handlers by event name, say who a connection is
    (`session_of`) and which link it holds (`rate_key`, `connect_link`), and
    put events in action classes (`limits`; the others are `default_limit`).
    """

    # How log lines name the namespace.
    label: ClassVar[str] = "socket"

    def __init__(
        self,
        namespace: str,
        clock: Clock,
        handlers: Mapping[str, Handler[S]],
        limits: Mapping[str, Limit] | None = None,
        *,
        default_limit: Limit = DEFAULT_LIMIT,
        auth_throttle: AuthThrottle | None = None,
        monotonic: rate_limits.Clock = time.monotonic,
    ) -> None:
        super().__init__(namespace)
        self.clock = clock
        self._handlers = dict(handlers)
        self._limits = {event: (limits or {}).get(event, default_limit) for event in handlers}
        # Per action class: (per connection, per link).
        self._buckets = {
            limit.name: (
                TokenBuckets(limit.budget, monotonic),
                TokenBuckets(limit.budget.times(LINK_FACTOR), monotonic),
            )
            for limit in self._limits.values()
        }
        self._connects = TokenBuckets(CONNECT, monotonic)
        self.auth_throttle = auth_throttle or AuthThrottle()

    async def session_of(self, sid: str) -> S | None:
        """Who `sid` is, None if it never authenticated; raise to refuse its events."""
        raise NotImplementedError

    def rate_key(self, session: S) -> str:
        """The link a session holds (room, person, role): what limits count per, with its sid."""
        raise NotImplementedError

    def connect_link(self, auth: Any) -> str | None:
        """The link a connection presents, when its token is genuine (at any time)."""
        raise NotImplementedError

    def failure_of(self, exc: Exception) -> errors.Failure | None:
        """The error table's answer (a namespace may word token errors for its own links)."""
        return errors.failure_of(exc)

    def describe(self, session: S) -> str:
        """How a failed event's log line names the connection: no personal data."""
        return ""

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            return await self._connect(*args)
        if event == "disconnect" and args:
            for per_connection, _ in self._buckets.values():
                per_connection.forget(args[0])
        handler = self._handlers.get(event)
        if handler is not None:
            sid, data = args[0], (args[1] if len(args) > 1 else None)
            return await self._answer(event, handler, sid, data)
        if hasattr(self, f"on_{event}"):
            # connect, disconnect: python-socketio's `on_<event>` methods.
            return await super().trigger_event(event, *args)
        # No such event: no ack at all, as for an event nobody registered.
        return self.server.not_handled

    async def _connect(self, sid: str, environ: Any, auth: Any = None) -> Any:
        source = environ_source(environ)
        try:
            self.auth_throttle.check(source)
        except errors.RateLimited as exc:
            raise refusal(rate_limited(exc.retry_after, exc.message)) from None
        link = self.connect_link(auth)
        if link is not None:
            wait = self._connects.take(link)
            if wait > 0:
                raise refusal(rate_limited(wait, CONNECT_MESSAGE))
        try:
            return await super().trigger_event("connect", sid, environ, auth)
        except socketio.exceptions.ConnectionRefusedError as exc:
            data = exc.error_args.get("data")
            if isinstance(data, dict) and data.get("code") in AUTH_FAILURES:
                self.auth_throttle.failed(source)
            raise

    def _rate_limited(self, event: str, sid: str, session: S) -> Ack | None:
        limit = self._limits[event]
        per_connection, per_link = self._buckets[limit.name]
        wait = take_all([(per_connection, sid), (per_link, self.rate_key(session))])
        return None if wait == 0 else rate_limited(wait, limit.message).ack()

    async def _answer(self, event: str, handler: Handler[S], sid: str, data: Any) -> Ack:
        session: S | None = None
        try:
            session = await self.session_of(sid)
            if session is None:
                return errors.NOT_CONNECTED.ack()
            refused = self._rate_limited(event, sid, session)
            if refused is not None:
                return refused
            return await handler(session, data)
        except Exception as exc:
            failure = self.failure_of(exc)
            if failure is None:
                context = "" if session is None else self.describe(session)
                logger.exception("%s event=%s %s failed", self.label, event, context)
                failure = errors.INTERNAL_ERROR
            return failure.ack()
