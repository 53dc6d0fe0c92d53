"""The integration API, `/api/v1/...`, for booking systems that prefer calls to webhooks.

Bearer API key (`TELECONSULT_API_KEY`); the API answers 503 `api_disabled`
until one is configured. Errors share the one JSON shape of every HTTP answer.
The contract is `signalling/openapi.json`, served at `/api/v1/openapi.json`.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from rooms.admission import invite_guest
from rooms.appointment import Person
from rooms.denials import reopen
from rooms.errors import DomainError, ErrorCode
from rooms.lifecycle import end_by_integration
from rooms.roles import Role
from rooms.room import Room
from signalling import tokens
from signalling.auth_throttle import AuthThrottle, request_source
from signalling.booking_hook import create_appointment_room, read_body, validation_message
from signalling.booking_payloads import ID_PATTERN, CreatedData, Text
from signalling.config import Settings
from signalling.errors import RequestError
from signalling.links import join_link, room_document
from signalling.room_hub import RoomHub
from store.event_log import InvalidCursor

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
MAX_EVENTS_PAGE = 500
# A working day: the booking system mints a fresh one each morning.
DESK_LINK_LIFETIME = timedelta(hours=14)
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LinkRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    role: Literal["patient", "practitioner"]


class GuestRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, str_strip_whitespace=True)
    name: Text


create_request = TypeAdapter(CreatedData)
link_request = TypeAdapter(LinkRequest)
guest_request = TypeAdapter(GuestRequest)


def openapi_document() -> dict[str, Any]:
    text = resources.files("signalling").joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def room_state(room: Room, now: datetime) -> dict[str, Any]:
    """A room as the booking system may see it: states and times, no names."""

    def time(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "room_id": room.id,
        "appointment_id": room.appointment.id,
        "status": room.status(now).value,
        "starts_at": room.appointment.starts_at.isoformat(),
        "ends_at": room.appointment.ends_at.isoformat(),
        "opens_at": room.window.opens_at.isoformat(),
        "closes_at": room.window.closes_at.isoformat(),
        "waiting": len(room.waiting.entries),
        "in_call": [
            {"role": participant.role.value, "joined_at": participant.joined_at.isoformat()}
            for participant in room.in_call
        ],
        "patient_checked_in_at": time(room.first_check_in_at),
        "no_show_at": time(room.no_show_at),
        "started_at": time(room.started_at),
        "ended_at": time(room.ended_at),
        "end_reason": None if room.end_reason is None else room.end_reason.value,
    }


async def _json_body(request: web.Request, adapter: TypeAdapter[T]) -> T:
    body = await read_body(request, MAX_BODY)
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise RequestError("malformed_json", "The body is not valid JSON.") from None
        raise RequestError("invalid_payload", validation_message(exc)) from None


class IntegrationApi:
    def __init__(
        self, settings: Settings, hub: RoomHub, auth_throttle: AuthThrottle | None = None
    ) -> None:
        self.settings = settings
        self.hub = hub
        self._key = None if settings.api_key is None else settings.api_key.encode()
        self.auth_throttle = auth_throttle or AuthThrottle()

    def add_routes(self, app: web.Application) -> None:
        guarded: list[tuple[str, str, Handler]] = [
            ("POST", "/appointments", self.create_appointment),
            ("GET", "/appointments/{appointment_id}", self.get_appointment),
            ("GET", "/rooms/{room_id}", self.get_room),
            ("POST", "/rooms/{room_id}/links", self.mint_link),
            ("POST", "/rooms/{room_id}/guests", self.invite_guest),
            ("POST", "/rooms/{room_id}/end", self.end_room),
            ("POST", "/rooms/{room_id}/reopen", self.reopen_room),
            ("POST", "/practitioners/{practitioner_id}/desk-link", self.desk_link),
            ("GET", "/events", self.list_events),
        ]
        for method, path, handler in guarded:
            app.router.add_route(method, PREFIX + path, self._authenticated(handler))
        app.router.add_get(PREFIX + "/openapi.json", self.openapi)

    def _authenticated(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self._key is None:
                raise RequestError("api_disabled", "The API is disabled: set TELECONSULT_API_KEY.")
            source = request_source(request)
            self.auth_throttle.check(source)
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            # A key is ASCII: anything else (raw bytes included) cannot match.
            if (
                scheme.lower() != "bearer"
                or not presented.isascii()
                or not hmac.compare_digest(presented.strip().encode(), self._key)
            ):
                self.auth_throttle.failed(source)
                raise RequestError("unauthorized", "A valid Bearer API key is required.")
            return await handler(request)

        return guarded

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def _room(self, room_id: str) -> Room:
        room = await self.hub.room(room_id)
        if room is None:
            raise DomainError(ErrorCode.ROOM_NOT_FOUND)
        return room

    async def create_appointment(self, request: web.Request) -> web.Response:
        data = await _json_body(request, create_request)
        room, created = await create_appointment_room(self.settings, self.hub, data)
        now = self.hub.clock()
        document = room_document(self.settings, room, room.status(now).value)
        return web.json_response(document, status=201 if created else 200)

    async def get_appointment(self, request: web.Request) -> web.Response:
        room = await self.hub.room_of_appointment(request.match_info["appointment_id"])
        if room is None:
            raise DomainError(ErrorCode.APPOINTMENT_NOT_FOUND)
        return web.json_response(room_state(room, self.hub.clock()))

    async def get_room(self, request: web.Request) -> web.Response:
        room = await self._room(request.match_info["room_id"])
        return web.json_response(room_state(room, self.hub.clock()))

    async def mint_link(self, request: web.Request) -> web.Response:
        room = await self._room(request.match_info["room_id"])
        wanted = await _json_body(request, link_request)
        try:
            room.check_joinable(self.hub.clock())
        except DomainError as exc:
            # A link for later is fine; one for a room nobody can enter again is not.
            if exc.code is not ErrorCode.ROOM_NOT_YET_OPEN:
                raise
        role = Role(wanted.role)
        return web.json_response(
            {
                "role": role.value,
                "link": join_link(self.settings, room, role),
                "valid_from": room.window.opens_at.isoformat(),
                "valid_until": room.window.closes_at.isoformat(),
            },
            status=201,
        )

    async def invite_guest(self, request: web.Request) -> web.Response:
        room = await self._room(request.match_info["room_id"])
        wanted = await _json_body(request, guest_request)
        guest = Person("guest-" + secrets.token_urlsafe(9), wanted.name)
        now = self.hub.clock()
        transition = await self.hub.apply(room.id, lambda r: invite_guest(r, guest, now))
        room = transition.room
        return web.json_response(
            {
                "role": Role.GUEST.value,
                "guest_id": guest.id,
                "link": join_link(self.settings, room, Role.GUEST, guest),
                "valid_from": room.window.opens_at.isoformat(),
                "valid_until": room.window.closes_at.isoformat(),
            },
            status=201,
        )

    async def desk_link(self, request: web.Request) -> web.Response:
        practitioner_id = request.match_info["practitioner_id"]
        if not re.match(ID_PATTERN, practitioner_id):
            raise RequestError("invalid_practitioner", "The practitioner id is not valid.")
        now = self.hub.clock()
        expires_at = now + DESK_LINK_LIFETIME
        token = tokens.mint_desk(
            self.settings.token_secret,
            practitioner_id=practitioner_id,
            not_before=now - timedelta(minutes=1),
            expires_at=expires_at,
        )
        return web.json_response(
            {
                "link": f"{self.settings.public_url}/d#{token}",
                "valid_until": expires_at.isoformat(),
            },
            status=201,
        )

    async def end_room(self, request: web.Request) -> web.Response:
        room = await self._room(request.match_info["room_id"])
        now = self.hub.clock()
        transition = await self.hub.apply(room.id, lambda r: end_by_integration(r, now))
        return web.json_response(room_state(transition.room, now))

    async def reopen_room(self, request: web.Request) -> web.Response:
        """Those the practitioner declined may come back (their link works again)."""
        room = await self._room(request.match_info["room_id"])
        now = self.hub.clock()
        transition = await self.hub.apply(room.id, lambda r: reopen(r, now))
        return web.json_response(room_state(transition.room, now))

    async def list_events(self, request: web.Request) -> web.Response:
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_EVENTS_PAGE:
            raise RequestError(
                "invalid_limit", f"limit must be a whole number from 1 to {MAX_EVENTS_PAGE}."
            )
        try:
            events = await self.hub.event_log.after(request.query.get("after"), int(raw_limit))
        except InvalidCursor as exc:
            raise RequestError("invalid_cursor", str(exc)) from None
        return web.json_response(
            {
                "events": [event.public() for event in events],
                "next_after": events[-1].id if events else request.query.get("after"),
            }
        )
