// The join link is /c/{room_id}#{token}. The token lives in the fragment so
// that browsers never send it to any server (access logs, Referer headers).

const ROOM_PATH = /^\/c\/([^/]+)\/?$/;

/** @returns {{roomId: string | null, token: string | null}} */
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
  return { roomId: roomId || null, token: token || null };
}
