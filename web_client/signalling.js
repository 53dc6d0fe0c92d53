// Thin wrapper over the socket.io client (docs/protocol.md): requests with an
// acknowledgement become Promises that either resolve with the ack or reject
// with a SignallingError carrying the server's error code.

export const DEFAULT_TIMEOUT_MS = 10_000;

export class SignallingError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "SignallingError";
    this.code = code;
  }
}

export class Signalling {
  /**
   * @param {{token: string, roomId: string, resumeSecret?: () => string | null}} credentials
   *   `resumeSecret` is read at every (re)connection: the server may have issued a new one.
   * @param {Function} io the global from the vendored socket.io client
   */
  constructor({ token, roomId, resumeSecret = () => null }, io) {
    this.socket = io({
      auth: (send) => {
        const resume = resumeSecret();
        send(resume ? { token, room_id: roomId, resume } : { token, room_id: roomId });
      },
      // The contract is websocket only; no long-polling round trips first.
      transports: ["websocket"],
      // A connection that opens then dies before the handshake raises no
      // error: only this timeout (20 s by default) ends each attempt.
      timeout: 5000,
    });
  }

  on(event, handler) {
    this.socket.on(event, handler);
  }

  off(event, handler) {
    this.socket.off(event, handler);
  }

  get connected() {
    return this.socket.connected;
  }

  /** Connects again after a refusal (socket.io does not retry refused handshakes). */
  connect() {
    this.socket.connect();
  }

  disconnect() {
    this.socket.disconnect();
  }

  /**
   * Emits `event` and resolves with the `{ok: true, ...}` ack.
   * @returns {Promise<object>}
   */
  async request(event, payload = {}, timeoutMs = DEFAULT_TIMEOUT_MS) {
    let ack;
    try {
      ack = await this.socket.timeout(timeoutMs).emitWithAck(event, payload);
    } catch {
      // Also what a request buffered during a disconnection ends with.
      throw new SignallingError("timeout", "The server did not answer in time.");
    }
    if (ack && ack.ok === true) return ack;
    const error = ack && typeof ack.error === "object" && ack.error ? ack.error : {};
    throw new SignallingError(
      typeof error.code === "string" ? error.code : "invalid_response",
      typeof error.message === "string" ? error.message : "The server gave an unexpected answer.",
    );
  }
}
