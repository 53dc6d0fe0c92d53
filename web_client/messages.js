// Every sentence the page shows for a refusal, an ending or a failed request,
// in one place, as catalogue keys (locales/*.json, i18n.js): a text is
// `{key, params}`, rendered in the person's language where it is shown, and
// again when they switch. Server messages are never shown: their error codes
// map to catalogue keys here.

import { parseInstant } from "./format.js";

/** Ack and refusal codes the catalogues explain (docs/protocol.md). */
const KNOWN_CODES = new Set([
  "not_allowed",
  "not_waiting",
  "not_in_call",
  "already_present",
  "room_not_yet_open",
  "room_closed",
  "room_ended",
  "room_cancelled",
  "room_not_found",
  "invalid_request",
  "not_connected",
  "internal_error",
  "store_unavailable",
  "rate_limited",
  "timeout",
  "invalid_response",
  "unknown_subscription",
  "token_missing",
  "token_invalid",
  "token_wrong_room",
]);

export const INCOMPLETE_LINK = { key: "error.incomplete_link" };
export const NETWORK_UNREACHABLE = { key: "error.network_unreachable" };
export const CONNECTION_LOST = { key: "error.connection_lost" };
export const PAGE_FAILED = { key: "error.page_failed" };

/** The sentence for a failed request's error code (never the server's English). */
export function reasonOf(error) {
  const code = error && typeof error.code === "string" ? error.code : "";
  return { key: KNOWN_CODES.has(code) ? `errors.${code}` : "errors.generic" };
}

/** Error screen texts for `connect_error` codes (docs/protocol.md). */
const REFUSALS = {
  token_missing: INCOMPLETE_LINK,
  token_invalid: { key: "error.token_invalid" },
  token_wrong_room: { key: "error.token_wrong_room" },
  room_not_found: { key: "error.room_not_found" },
};

/**
 * What to show for a refused connection or an ending.
 * @returns {{state: string, title?: string, message: {key: string, params?: object}, retry?: boolean}}
 */
export function outcomeForCode(code, details) {
  switch (code) {
    case "link_outdated":
      return { state: "error", title: "limits.link_outdated_title", message: linkOutdatedMessage(details) };
    case "room_closed":
      return { state: "closed", title: "closed.title", message: { key: "closed.message" } };
    case "room_cancelled":
      return { state: "closed", title: "closed.cancelled_title", message: { key: "closed.cancelled" } };
    case "room_ended":
      return { state: "ended", title: "ended.title", message: { key: "ended.by_practitioner" } };
    default:
      return {
        state: "error",
        title: "error.title",
        message: REFUSALS[code] || { key: "error.refused" },
      };
  }
}

/** `room_ended` carries a `reason` beyond the documented `{}`; use it when present. */
export function outcomeForRoomEnded(reason) {
  if (reason === "cancelled") return outcomeForCode("room_cancelled");
  if (reason === "closed") return outcomeForCode("room_closed");
  return outcomeForCode("room_ended");
}

/** A link from before a reschedule: the appointment's new time when the refusal gives it. */
function linkOutdatedMessage(details) {
  const startsAt = parseInstant(details && details.starts_at);
  if (!startsAt) return { key: "limits.link_outdated" };
  return { key: "limits.link_outdated_at", params: { when: { moment: startsAt.toISOString() } } };
}

export function notYetOpenMessage(opensAt) {
  if (!opensAt) return { key: "not_yet_open.soon" };
  return { key: "not_yet_open.opens", params: { when: { moment: opensAt.toISOString() } } };
}

export function appointmentTexts(session) {
  const room = session.room || {};
  const startsAt = parseInstant(room.starts_at);
  const when = startsAt
    ? { key: "precall.appointment_time", params: { when: { moment: startsAt.toISOString() } } }
    : null;
  if (session.role === "practitioner") {
    return { withText: { key: "precall.practitioner_ready" }, timeText: when };
  }
  const withText = room.practitioner_name
    ? { key: "precall.with", params: { name: room.practitioner_name } }
    : { key: "precall.with_unnamed" };
  return { withText, timeText: when };
}

/** The denied screen's text; the practitioner's own reason, when given, is shown as is. */
export function deniedMessage(reason) {
  if (typeof reason !== "string" || !reason.trim()) return { key: "denied.message" };
  return { key: "denied.with_reason", params: { reason: reason.trim() } };
}

/** "Expected to start at about 10:40 (your local time)." or null when unknown. */
export function expectedStartText(expectedStart, now = Date.now()) {
  const when = parseInstant(expectedStart);
  if (!when) return null;
  // An estimate in the past means "any moment now": say so rather than show a time gone by.
  if (when.getTime() <= now) return { key: "waiting.expected_now" };
  return { key: "waiting.expected_at", params: { time: { time: when.toISOString() } } };
}
