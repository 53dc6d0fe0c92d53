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

const TOKEN_PREFIX = "teleconsult.link.";

/**
 * The join link of this tab, with its token taken out of the address bar.
 *
 * Once read, the fragment is replaced away (`history.replaceState`): the token
 * is no longer on screen for someone looking over a shoulder or at a shared
 * screen, nor in a copied address. The tab keeps it in sessionStorage (gone when
 * the tab closes), so a reload still joins. Where storage is blocked the link
 * stays as it is: a reload must keep working.
 * @returns {{roomId: string | null, token: string | null, locale: string | null}}
 */
export function takeJoinLink(window) {
  const link = parseJoinLink(window.location);
  if (!link.roomId) return link;
  const key = TOKEN_PREFIX + link.roomId;
  try {
    if (link.token) {
      window.sessionStorage.setItem(key, link.token);
      const { pathname, search } = window.location;
      window.history.replaceState(window.history.state, "", pathname + search);
    } else {
      link.token = window.sessionStorage.getItem(key);
    }
  } catch {
    // Storage blocked: the token stays in the address bar, which keeps reloads working.
  }
  return link;
}

/**
 * The page moved into another room (the practitioner's day, room-switch.js):
 * a reload joins that room, with its token kept like the first one's.
 */
export function rememberJoinLink(window, roomId, token) {
  try {
    window.sessionStorage.setItem(TOKEN_PREFIX + roomId, token);
    const path = `/c/${encodeURIComponent(roomId)}`;
    window.history.replaceState(window.history.state, "", path + window.location.search);
  } catch {
    // Storage blocked: a reload rejoins the first room, whose link is in the address bar.
  }
}
