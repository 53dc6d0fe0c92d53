"""What Socket.IO events carry (`/` and `/desk`), validated with pydantic (docs/protocol.md).

Each model says how a refused payload is answered (`refusals`): by the first
field in error, in the model's field order, or by the names of unknown fields
for the models that forbid them. Refusals never quote a value: E2EE messages
carry key material, and the rest carries names.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from rooms.errors import ErrorCode
from signalling.errors import RequestError

# End-to-end encryption messages (docs/e2ee.md) are opaque to us: we check
# only their shape and size, forward them, and never log or store them.
E2EE_PUBLIC_KEY_BYTES = 65  # An uncompressed P-256 point.
E2EE_WRAPPED_MAX_BYTES = 256
DESK_MESSAGE_MAX = 500

INVALID = ErrorCode.INVALID_REQUEST.value


class Refusal(NamedTuple):
    code: str
    message: str


class Payload(BaseModel):
    # python-re: `$` as in Python's `re.match`, like the hand-written checks these replace.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", regex_engine="python-re")
    # Field name -> its refusal; "" when the payload is not an object at all.
    refusals: ClassVar[Mapping[str, Refusal]]

    @classmethod
    def refusal(cls, exc: ValidationError) -> RequestError:
        problems = exc.errors(include_url=False, include_context=False, include_input=False)
        unknown = sorted(str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden")
        if unknown:
            return RequestError(INVALID, f"Unexpected fields: {', '.join(unknown)[:200]}.")
        order = {name: index for index, name in enumerate(cls.model_fields)}
        failed = sorted(
            (str(p["loc"][0]) if p["loc"] else "" for p in problems),
            key=lambda name: order.get(name, -1),
        )
        code, message = cls.refusals[failed[0]]
        return RequestError(code, message)


P = TypeVar("P", bound=Payload)


def parse(model: type[P], data: Any) -> P:
    """`data` as `model`, or the model's refusal (an `errors.RequestError`)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise model.refusal(exc) from None


def _stripped(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("blank")
    return value


def _decoded_length(value: str) -> int:
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return -1


def _p256_point(value: str) -> str:
    if _decoded_length(value) != E2EE_PUBLIC_KEY_BYTES or base64.b64decode(value)[0] != 0x04:
        raise ValueError("not an uncompressed P-256 point")
    return value


def _wrapped_key(value: str) -> str:
    if _decoded_length(value) not in range(1, E2EE_WRAPPED_MAX_BYTES + 1):
        raise ValueError("not a wrapped key")
    return value


# Entry ids we issue are token_urlsafe(9); the waiting list's are checked no further.
EntryId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Recipient = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# Room ids we issue are 22 base64url characters (signalling.tokens.room_id_for).
RoomId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
# What we issue is token_urlsafe(32): 43 characters.
ResumeSecret = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{32,128}$")]
Base64 = Annotated[str, StringConstraints(max_length=4 * E2EE_WRAPPED_MAX_BYTES)]
PublicKey = Annotated[Base64, AfterValidator(_p256_point)]
WrappedKey = Annotated[Base64, AfterValidator(_wrapped_key)]


def _guest_name(value: str) -> str:
    value = _stripped(value)
    if len(value) > 200:
        raise ValueError("too long")
    return value


# Desk texts: the limit is on what was sent, the text kept is stripped.
DeskEntryId = Annotated[str, StringConstraints(max_length=100), AfterValidator(_stripped)]
DeskReason = Annotated[str, StringConstraints(max_length=300), AfterValidator(_stripped)]
DeskText = Annotated[str, StringConstraints(max_length=DESK_MESSAGE_MAX), AfterValidator(_stripped)]


# The default namespace `/`.

NO_ROOM = Refusal(ErrorCode.ROOM_NOT_FOUND.value, "No such consultation room.")


_resume_secret: TypeAdapter[str | None] = TypeAdapter(
    ResumeSecret | None, config=Payload.model_config
)


class JoinAuth(Payload):
    """`auth` of a connection; `token` is checked by signalling.tokens."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": NO_ROOM, "room_id": NO_ROOM}
    room_id: RoomId
    token: object = None
    resume: object = None

    def resume_secret(self) -> str | None:
        """The secret to take an entry back with (checked once the link and room are)."""
        try:
            return _resume_secret.validate_python(self.resume)
        except ValidationError:
            raise RequestError(INVALID, "The resume key is not valid.") from None


NOT_WAITING = Refusal(ErrorCode.NOT_WAITING.value, "Expected {entry_id} of a waiting patient.")
NOT_DENIED = Refusal(ErrorCode.NOT_DENIED.value, "Expected {entry_id} of a declined person.")


class EntryAction(Payload):
    """`admit`, `return_to_waiting`: whom."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": NOT_WAITING, "entry_id": NOT_WAITING}
    entry_id: EntryId


class Undenial(Payload):
    """`undeny`: whose denial to undo."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": NOT_DENIED, "entry_id": NOT_DENIED}
    entry_id: EntryId


class Denial(Payload):
    refusals: ClassVar[Mapping[str, Refusal]] = {
        "": NOT_WAITING,
        "entry_id": NOT_WAITING,
        "reason": Refusal(INVALID, "reason must be text."),
    }
    entry_id: EntryId
    # Its length is the domain's rule (rooms.room.deny).
    reason: str | None = None


GUEST_NAME = Refusal(INVALID, "name must be 1 to 200 characters.")


class GuestInvitation(Payload):
    refusals: ClassVar[Mapping[str, Refusal]] = {"": GUEST_NAME, "name": GUEST_NAME}
    name: Annotated[str, AfterValidator(_guest_name)]


PUBLISH = Refusal(INVALID, "Expected {sdp, type: 'offer'} or {prepared: true}.")
PREPARE = Refusal(INVALID, "Expected {sdp, type: 'offer'}.")
ANSWER = Refusal(INVALID, "Expected {subscription_id, sdp, type: 'answer'}.")


class PublishOffer(Payload):
    """`publish`: an offer (the relay checks the SDP itself), or `{prepared: true}` for
    the connection `prepare_publish` made while waiting."""

    refusals: ClassVar[Mapping[str, Refusal]] = {
        "": PUBLISH,
        "type": PUBLISH,
        "prepared": PUBLISH,
    }
    type: Literal["offer"] | None = None
    sdp: object = None
    prepared: Literal[True] | None = None

    @model_validator(mode="after")
    def _offer_or_prepared(self) -> PublishOffer:
        if (self.prepared is None) == (self.type is None):
            raise ValueError("either an offer or prepared")
        return self


class PrepareOffer(Payload):
    """`prepare_publish`: a waiting person's publish offer (docs/protocol.md)."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": PREPARE, "type": PREPARE}
    type: Literal["offer"]
    sdp: object = None


class SubscriptionAnswer(Payload):
    """`subscription_answer`: the relay checks the subscription and the SDP itself."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": ANSWER, "type": ANSWER}
    type: Literal["answer"]
    subscription_id: object = None
    sdp: object = None


class KeyframeRequest(Payload):
    """`keyframe_request`: the relay checks the subscription is the sender's."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": Refusal(INVALID, "Expected an object.")}
    subscription_id: object = None


class _E2ee(Payload):
    model_config = ConfigDict(extra="forbid")
    refusals: ClassVar[Mapping[str, Refusal]] = {
        "": Refusal(INVALID, "Expected an object."),
        "public_key": Refusal(INVALID, "public_key must be base64 of an uncompressed P-256 point."),
        "wrapped": Refusal(
            INVALID, f"wrapped must be base64 of at most {E2EE_WRAPPED_MAX_BYTES} bytes."
        ),
        "to": Refusal(INVALID, "to must be the entry id of a participant."),
    }


class E2eeHello(_E2ee):
    public_key: PublicKey
    # Absent: everyone else in the call (a `to` that is sent is never empty).
    to: Recipient = ""


class E2eeKey(_E2ee):
    public_key: PublicKey
    wrapped: WrappedKey
    to: Recipient


Quality = Literal["good", "fair", "poor", "unknown"]
# More than a call holds (the practitioner, the patient and a few guests).
MEDIA_STATE_MAX_PEERS = 16


def _few_peers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MEDIA_STATE_MAX_PEERS:
        raise ValueError("too many")
    return value


class MediaState(Payload):
    """`media_state`: this page's connection quality, whether it sends video, how it receives."""

    model_config = ConfigDict(extra="forbid")
    refusals: ClassVar[Mapping[str, Refusal]] = {
        "": Refusal(INVALID, "Expected an object."),
        "quality": Refusal(INVALID, "quality must be good, fair, poor or unknown."),
        "video": Refusal(INVALID, "video must be true or false."),
        "receiving": Refusal(
            INVALID,
            f"receiving must map at most {MEDIA_STATE_MAX_PEERS} entry ids to a quality.",
        ),
    }
    quality: Quality
    video: bool
    # Entry id of another participant -> how this page receives their media.
    receiving: Annotated[dict[Recipient, Quality], AfterValidator(_few_peers)] = {}


# The desk namespace `/desk`.


class DeskRoom(Payload):
    """Which of the practitioner's rooms; anything else is no room at all."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": NO_ROOM, "room_id": NO_ROOM}
    room_id: str


def _desk_refusal(field: str, limit: int) -> Refusal:
    return Refusal(INVALID, f"`{field}` must be 1 to {limit} characters.")


class DeskEntryAction(Payload):
    """`admit`, `return_to_waiting` from the desk (after `DeskRoom`)."""

    refusals: ClassVar[Mapping[str, Refusal]] = {
        "": _desk_refusal("entry_id", 100),
        "entry_id": _desk_refusal("entry_id", 100),
    }
    entry_id: DeskEntryId


class DeskDenial(DeskEntryAction):
    refusals: ClassVar[Mapping[str, Refusal]] = {
        **DeskEntryAction.refusals,
        "reason": _desk_refusal("reason", 300),
    }
    reason: DeskReason | None = None


class DeskMessage(Payload):
    """`message`: to one room's waiting people (`room_id`), or to all of the day's."""

    refusals: ClassVar[Mapping[str, Refusal]] = {
        "": _desk_refusal("text", DESK_MESSAGE_MAX),
        "text": _desk_refusal("text", DESK_MESSAGE_MAX),
    }
    text: DeskText
    room_id: object = None


# The practitioner's day screen and talking to the waiting room (docs/protocol.md).

REPLY_MAX = 200
CHAT_CIPHERTEXT_MAX_BYTES = 4096 + 16  # 1000 characters of UTF-8 at most, and the GCM tag.
CHAT_IV_BYTES = 12


def _chat_iv(value: str) -> str:
    if _decoded_length(value) != CHAT_IV_BYTES:
        raise ValueError("not an IV")
    return value


def _chat_ciphertext(value: str) -> str:
    # At least the 16-byte tag and one byte of text.
    if _decoded_length(value) not in range(17, CHAT_CIPHERTEXT_MAX_BYTES + 1):
        raise ValueError("not a chat ciphertext")
    return value


class RoomTokenRequest(Payload):
    """`room_token`: which other room of the practitioner's day to move into."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": NO_ROOM, "room_id": NO_ROOM}
    room_id: RoomId


REPLY = Refusal(INVALID, f"text must be 1 to {REPLY_MAX} characters.")


class PatientReply(Payload):
    """`reply`: a waiting patient's short answer to the practitioner (never logged)."""

    refusals: ClassVar[Mapping[str, Refusal]] = {"": REPLY, "text": REPLY}
    text: Annotated[str, StringConstraints(max_length=REPLY_MAX), AfterValidator(_stripped)]


class ChatMessage(Payload):
    """`chat`: one in-call text message, sealed in the browser; opaque to us (docs/e2ee.md)."""

    model_config = ConfigDict(extra="forbid")
    refusals: ClassVar[Mapping[str, Refusal]] = {
        "": Refusal(INVALID, "Expected {kid, iv, data}."),
        "kid": Refusal(INVALID, "kid must be a whole number from 1 to 2^32 - 1."),
        "iv": Refusal(INVALID, f"iv must be base64 of {CHAT_IV_BYTES} bytes."),
        "data": Refusal(
            INVALID, f"data must be base64 of 17 to {CHAT_CIPHERTEXT_MAX_BYTES} bytes."
        ),
    }
    kid: Annotated[int, Field(ge=1, le=2**32 - 1)]
    iv: Annotated[Base64, AfterValidator(_chat_iv)]
    data: Annotated[
        str,
        StringConstraints(max_length=4 * (CHAT_CIPHERTEXT_MAX_BYTES // 3 + 1)),
        AfterValidator(_chat_ciphertext),
    ]
