// Dates and durations in the person's own language and time zone: the server
// sends ISO 8601 instants, people think in local wall-clock time. The
// formatting itself (Intl, 24-hour clock in French) is in i18n.js.

import { formatMoment, formatTime, t } from "./i18n.js";

export { formatMoment, formatTime };

/** Parses an ISO 8601 string; null when absent or unparsable. */
export function parseInstant(iso) {
  if (typeof iso !== "string" || !iso) return null;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "waiting less than a minute", "waiting 3 min", "waiting 1 h 05 min" (in the language). */
export function formatWaited(since, now = Date.now()) {
  // Clock skew between the server and this computer can make this negative.
  const minutes = Math.max(0, Math.floor((now - since.getTime()) / 60000));
  if (minutes < 1) return t("waited.under_a_minute");
  if (minutes < 60) return t("waited.minutes", { minutes });
  const hours = Math.floor(minutes / 60);
  const rest = String(minutes % 60).padStart(2, "0");
  return t("waited.hours", { hours, minutes: rest });
}
