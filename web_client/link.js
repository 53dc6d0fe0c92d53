// The join link is /c/{room_id}#{token}. The token lives in the fragment so
// that browsers never send it to any server (access logs, Referer headers).

const ROOM_PATH = /^\/c\/([^/]+)\/?$/;

/**
 * `?lang=fr|en`, optional: a language a booking system may add to the link so
 * that even the first "Connecting…" is in it (the appointment's own `locale`
 * arrives with `session` or a refusal anyway). Not a secret: it may reach logs.
 * @returns {{roomId: string | null, token: string | null, locale: string | null}}
 */
export function parseJoinLink(location) {
  const match = ROOM_PATH.exec(location.pathname);
  let roomId = null;
  if (match) {
    try {
      roomId = decodeURIComponent(match[1]);
    } catch {
      roomId = null; // A mangled %-escape: treat it like a broken link.
    }
  }
  const token = location.hash.slice(1).trim();
  const locale = new URLSearchParams(location.search || "").get("lang");
  return { roomId: roomId || null, token: token || null, locale: locale || null };
}
