// The secret that brings this tab back to its place after a reload or a lost
// connection (docs/protocol.md, "Coming back"). Kept in sessionStorage: per
// tab, gone when the tab closes, never sent anywhere but the server's
// handshake. Keyed by room, so two consultations in one tab do not mix.

const PREFIX = "teleconsult.resume.";

export class ResumeSecret {
  constructor(roomId) {
    this.key = PREFIX + roomId;
  }

  get() {
    try {
      return window.sessionStorage.getItem(this.key);
    } catch {
      return null; // Storage blocked: the page still works, without coming back.
    }
  }

  set(secret) {
    try {
      window.sessionStorage.setItem(this.key, secret);
    } catch {
      // As above.
    }
  }

  clear() {
    try {
      window.sessionStorage.removeItem(this.key);
    } catch {
      // As above.
    }
  }
}
