// Dates and durations in the person's own locale and time zone: the server
// sends ISO 8601 instants, people think in local wall-clock time.

const TIME = { hour: "2-digit", minute: "2-digit" };
const DAY = { weekday: "long", day: "numeric", month: "long" };

function sameDay(a, b) {
  return (
    a.getFullYear() === b.getFullYear() &&
    a.getMonth() === b.getMonth() &&
    a.getDate() === b.getDate()
  );
}

/** Parses an ISO 8601 string; null when absent or unparsable. */
export function parseInstant(iso) {
  if (typeof iso !== "string" || !iso) return null;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function formatTime(date) {
  return date.toLocaleTimeString(undefined, TIME);
}

/** "today at 09:00", "tomorrow at 09:00" or "Monday 23 November at 09:00". */
export function formatMoment(date, now = new Date()) {
  const time = formatTime(date);
  if (sameDay(date, now)) return `today at ${time}`;
  const tomorrow = new Date(now);
  tomorrow.setDate(now.getDate() + 1);
  if (sameDay(date, tomorrow)) return `tomorrow at ${time}`;
  return `${date.toLocaleDateString(undefined, DAY)} at ${time}`;
}

/** "waiting less than a minute", "waiting 3 min", "waiting 1 h 05 min". */
export function formatWaited(since, now = Date.now()) {
  // Clock skew between the server and this computer can make this negative.
  const minutes = Math.max(0, Math.floor((now - since.getTime()) / 60000));
  if (minutes < 1) return "waiting less than a minute";
  if (minutes < 60) return `waiting ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = String(minutes % 60).padStart(2, "0");
  return `waiting ${hours} h ${rest} min`;
}
