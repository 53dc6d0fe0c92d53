// Every sentence the page shows for a refusal or an ending, in one place, so
// that the wording stays consistent (and can be translated later).

import { formatMoment, formatTime, parseInstant } from "./format.js";

export const INCOMPLETE_LINK =
  "This link is incomplete: part of it is missing. Please open the full link you were " +
  "sent (copy all of it, including the part after the # sign).";

export const NETWORK_UNREACHABLE =
  "We could not reach the consultation service. Check your internet connection, then " +
  "press Try again.";

export const CONNECTION_LOST =
  "The connection was lost. Press Rejoin to join the consultation again.";

export const BROWSER_UNSUPPORTED =
  "This browser cannot make video calls. Please open the link in an up-to-date Chrome, " +
  "Edge, Firefox or Safari.";

export const E2EE_UNSUPPORTED =
  "This consultation is protected by end-to-end encryption, so that only you and the " +
  "people in the call can see and hear it, and this browser cannot encrypt video calls. " +
  "Please open the link in an up-to-date Chrome, Edge, Firefox or Safari.";

export const PAGE_FAILED =
  "Something went wrong on this page. Please press Try again.";

/** Error screen texts for `connect_error` codes (docs/protocol.md). */
const REFUSALS = {
  token_missing: INCOMPLETE_LINK,
  token_invalid:
    "This link is not valid. Please open the exact link you were sent, or ask the practice " +
    "for a new one.",
  token_wrong_room:
    "This link belongs to another consultation. Please open the link you were sent for " +
    "this appointment.",
  room_not_found:
    "We could not find this consultation. The link may be out of date: please ask the " +
    "practice for a new one.",
};

/**
 * What to show for a refused connection or an ending.
 * @returns {{state: string, title?: string, message: string, retry?: boolean}}
 */
export function outcomeForCode(code, serverMessage) {
  switch (code) {
    case "room_closed":
      return {
        state: "closed",
        title: "This consultation room is closed",
        message:
          "The time to join this consultation is over. If you still need it, please contact " +
          "the practice.",
      };
    case "room_cancelled":
      return {
        state: "closed",
        title: "This appointment was cancelled",
        message:
          "This appointment was cancelled, so there is no consultation to join. Please " +
          "contact the practice if you think this is a mistake.",
      };
    case "room_ended":
      return { state: "ended", message: "The practitioner has ended this consultation." };
    default:
      return {
        state: "error",
        message:
          REFUSALS[code] ||
          (typeof serverMessage === "string" && serverMessage) ||
          "We could not connect you to the consultation. Please check the link you were sent.",
      };
  }
}

/** `room_ended` carries a `reason` beyond the documented `{}`; use it when present. */
export function outcomeForRoomEnded(reason) {
  if (reason === "cancelled") return outcomeForCode("room_cancelled");
  if (reason === "closed") return outcomeForCode("room_closed");
  return outcomeForCode("room_ended");
}

export function notYetOpenMessage(opensAt) {
  if (!opensAt) return "It will open a few minutes before your appointment.";
  return `It opens ${formatMoment(opensAt)} (your local time).`;
}

export function appointmentTexts(session) {
  const room = session.room || {};
  const practitioner = room.practitioner_name || "your practitioner";
  const startsAt = parseInstant(room.starts_at);
  const when = startsAt ? `Appointment ${formatMoment(startsAt)}.` : "";
  if (session.role === "practitioner") {
    return {
      withText: "When you are ready, open the consultation: your patients can then be admitted.",
      timeText: when,
    };
  }
  return { withText: `Your consultation with ${practitioner}.`, timeText: when };
}

/** The denied screen's text; the practitioner's own reason, when given, is shown as is. */
export function deniedMessage(reason) {
  const base =
    "The practitioner could not admit you to this consultation. If you think this is a " +
    "mistake, please contact the practice.";
  if (typeof reason !== "string" || !reason.trim()) return base;
  return `The practitioner could not admit you to this consultation. Their message: “${reason.trim()}”`;
}

/** "Expected to start at about 10:40 (your local time)." or "" when unknown. */
export function expectedStartText(expectedStart, now = Date.now()) {
  const when = parseInstant(expectedStart);
  if (!when) return "";
  // An estimate in the past means "any moment now": say so rather than show a time gone by.
  if (when.getTime() <= now) return "Your consultation should start any moment now.";
  return `Your consultation should start at about ${formatTime(when)} (your local time).`;
}
