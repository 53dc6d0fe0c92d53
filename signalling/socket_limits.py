"""How many socket actions a connection and a link may take: budgets per action class.

Every event of both namespaces belongs to one class (events of a class share
their budget) and is limited twice: per connection, and per link (room, person,
role), whose budget is twice as large so two devices of one person both fit
but a flood of connections on one link does not multiply it. Connections are
limited per link the same way. A refused event changes nothing and answers
`rate_limited` with `retry_after` (docs/protocol.md, "Limits").

The budgets sit far above what the page does in a real call: one `publish` per
(re)connection to the relay, one `subscription_answer` per stream offered, an
`e2ee_hello` per join and per peer, one `e2ee_key` per peer and rekey, one
check-in per connection, a handful of admissions a consultation.
"""

from __future__ import annotations

from dataclasses import dataclass

from signalling.rate_limits import Budget


@dataclass(frozen=True, slots=True)
class Limit:
    """One action class: its name, its budget per connection, what the refusal says."""

    name: str
    budget: Budget
    message: str


# Link per connection: the link's budget is this many connections' worth.
LINK_FACTOR = 2

SIGNALLING = Limit(
    "signalling",
    # A call's start is a few dozen; failover re-publishes and re-subscribes everyone at once.
    Budget(burst=100, per_second=2),
    "Too many media or key messages; wait a few seconds.",
)
ROOM_ACTION = Limit(
    "room_action",
    Budget(burst=20, per_second=0.5),
    "Too many actions in a row; wait a few seconds.",
)
INVITATION = Limit(
    "invitation",
    Budget(burst=5, per_second=0.1),
    "Too many invitations in a row; wait a few seconds.",
)
MESSAGE = Limit(
    "message",
    Budget(burst=10, per_second=0.2),
    "Too many messages in a row; wait a few seconds.",
)
REFRESH = Limit(
    "refresh",
    Budget(burst=10, per_second=1),
    "Too many refreshes; wait a few seconds.",
)
CONNECTION_TEST = Limit(
    "connection_test",
    # A page runs one when its device check opens, and again when the person asks.
    Budget(burst=6, per_second=0.1),
    "Too many connection tests; wait a minute.",
)
MEDIA_STATE = Limit(
    "media_state",
    # A page reports every 2 s and on each change; a few times that is still plenty.
    Budget(burst=20, per_second=1),
    "Too many media reports; wait a few seconds.",
)
CHAT = Limit(
    "chat",
    # Typing a drug name or an address: a message every couple of seconds at most.
    Budget(burst=20, per_second=0.5),
    "Too many messages; wait a few seconds.",
)
REPLY = Limit(
    "reply",
    # A few words now and then from the waiting room; more is flooding the doctor.
    Budget(burst=6, per_second=1 / 20),
    "Too many messages; wait a minute.",
)
# A page reconnects after a drop, a reload or a takeover: tens a minute is never a person.
CONNECT = Budget(burst=20, per_second=1 / 3)
CONNECT_MESSAGE = "Too many connections on this link; wait a few seconds."

ROOM_LIMITS: dict[str, Limit] = {
    "publish": SIGNALLING,
    "prepare_publish": SIGNALLING,
    "subscription_answer": SIGNALLING,
    "e2ee_hello": SIGNALLING,
    "e2ee_key": SIGNALLING,
    "keyframe_request": SIGNALLING,
    "invite_guest": INVITATION,
    "connection_test": CONNECTION_TEST,
    "media_state": MEDIA_STATE,
    "chat": CHAT,
    "reply": REPLY,
}
DESK_LIMITS: dict[str, Limit] = {
    "message": MESSAGE,
    "refresh": REFRESH,
}
# Everything else (check-in, admissions, leaving, ending) is a room action.
DEFAULT_LIMIT = ROOM_ACTION
