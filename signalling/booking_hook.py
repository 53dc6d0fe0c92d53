"""`POST /hooks/booking`: the booking system announces, moves or cancels appointments."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from aiohttp import web
from pydantic import ValidationError

from rooms.appointment import Appointment, Person, Practice
from rooms.errors import DomainError, ErrorCode
from rooms.lifecycle import cancel, create_room, reschedule
from rooms.room import Room
from signalling import tokens, webhook_signature
from signalling.auth_throttle import AuthThrottle, request_source
from signalling.booking_payloads import (
    AppointmentCancelled,
    AppointmentCreated,
    AppointmentRescheduled,
    CreatedData,
    booking_message,
)
from signalling.config import Settings, webhook_key
from signalling.errors import RequestError
from signalling.links import room_document
from signalling.room_hub import RoomHub
from store.webhook_receipts import WebhookReceipt, WebhookReceipts

logger = logging.getLogger(__name__)

MESSAGE_TYPES = ("appointment.created", "appointment.rescheduled", "appointment.cancelled")

# Redeliveries come within the sender's retry schedule; a day covers the
# Standard Webhooks reference schedule (last retry after ~10 hours).
RECEIPT_LIFETIME = timedelta(days=1)


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise RequestError("payload_too_large", f"The body must not exceed {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > limit:
            raise RequestError("payload_too_large", f"The body must not exceed {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def validation_message(exc: ValidationError) -> str:
    # Only locations and reasons: the rejected values may be patients' names.
    problems = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        if error["type"].startswith("union_tag"):
            # pydantic's message quotes the rejected value.
            problems.append("type: must be one of " + ", ".join(MESSAGE_TYPES))
            continue
        loc = error["loc"]
        if loc and loc[0] in MESSAGE_TYPES:
            loc = loc[1:]  # the union's tag, not a field of the body
        where = ".".join(str(part) for part in loc) or "body"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


async def create_appointment_room(
    settings: Settings, hub: RoomHub, data: CreatedData
) -> tuple[Room, bool]:
    """The room of an appointment, created unless it exists; shared by the hook and the API."""
    appointment = Appointment(
        id=data.appointment_id,
        practitioner=Person(data.practitioner.id, data.practitioner.name),
        patient=Person(data.patient.id, data.patient.name),
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        locale=data.locale,
        practice=None
        if data.practice is None
        else Practice(data.practice.name, data.practice.phone),
    )
    room_id = tokens.room_id_for(settings.token_secret, appointment.id)
    transition = create_room(room_id, appointment, settings.join_window)
    # Announced: an open desk of this practitioner lists it at once.
    return await hub.create(transition)


class BookingHook:
    def __init__(
        self,
        settings: Settings,
        hub: RoomHub,
        receipts: WebhookReceipts,
        auth_throttle: AuthThrottle | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.receipts = receipts
        self.key = webhook_key(settings.webhook_secret)
        self.auth_throttle = auth_throttle or AuthThrottle()

    async def handle(self, request: web.Request) -> web.Response:
        source = request_source(request)
        self.auth_throttle.check(source)
        body = await read_body(request, self.settings.webhook_max_body)
        now = self.hub.clock()
        webhook_id = request.headers.get("webhook-id")
        try:
            webhook_signature.verify(
                self.key,
                webhook_id=webhook_id,
                timestamp=request.headers.get("webhook-timestamp"),
                signature=request.headers.get("webhook-signature"),
                body=body,
                now=now,
                tolerance=self.settings.webhook_tolerance,
            )
        except webhook_signature.SignatureError as exc:
            logger.info("booking webhook refused: %s", exc.problem)
            self.auth_throttle.failed(source)
            raise
        assert webhook_id is not None
        if len(webhook_id) > 200:
            raise RequestError("invalid_webhook_id", "The webhook-id header is too long.")

        receipt = await self.receipts.recall(webhook_id, now)
        if receipt is not None:
            # A redelivery: answer with the room as it is, apply nothing again.
            return self._room_response(await self._existing(receipt.appointment_id), now, 200)

        try:
            message = booking_message.validate_json(body)
        except ValidationError as exc:
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                raise RequestError("malformed_json", "The body is not valid JSON.") from None
            raise RequestError("invalid_payload", validation_message(exc)) from None

        match message:
            case AppointmentCreated():
                room, status = await self._created(message)
            case AppointmentRescheduled():
                room, status = await self._rescheduled(message, now)
            case AppointmentCancelled():
                room, status = await self._cancelled(message, now)
        await self.receipts.remember(
            WebhookReceipt(webhook_id, room.appointment.id, now + RECEIPT_LIFETIME)
        )
        logger.info("booking webhook type=%s room=%s status=%d", message.type, room.id, status)
        return self._room_response(room, now, status)

    def _room_response(self, room: Room, now: datetime, status: int) -> web.Response:
        document = room_document(self.settings, room, room.status(now).value)
        return web.json_response(document, status=status)

    async def _created(self, message: AppointmentCreated) -> tuple[Room, int]:
        room, created = await create_appointment_room(self.settings, self.hub, message.data)
        return room, 201 if created else 200

    async def _existing(self, appointment_id: str) -> Room:
        room = await self.hub.room_of_appointment(appointment_id)
        if room is None:
            raise DomainError(ErrorCode.APPOINTMENT_NOT_FOUND)
        return room

    async def _rescheduled(
        self, message: AppointmentRescheduled, now: datetime
    ) -> tuple[Room, int]:
        data = message.data
        room = await self._existing(data.appointment_id)
        policy = self.settings.join_window
        transition = await self.hub.apply(
            room.id, lambda r: reschedule(r, data.starts_at, data.ends_at, policy)
        )
        return transition.room, 200

    async def _cancelled(self, message: AppointmentCancelled, now: datetime) -> tuple[Room, int]:
        room = await self._existing(message.data.appointment_id)
        transition = await self.hub.apply(room.id, lambda r: cancel(r, now))
        return transition.room, 200
