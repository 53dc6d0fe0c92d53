// Coming back after a reload or a reconnection (docs/protocol.md, "Coming
// back"; docs/web_client.md, "Connection problems").

import { enterCall, startCallMedia } from "./call-screen.js";
import { app } from "./state.js";
import { closeCall } from "./teardown.js";
import { enterWaiting } from "./waiting-screen.js";

/**
 * The server gave us our place back (`app.resumed`). In the call, the old
 * connections died with the network: publish again, accept the new
 * subscription offers, and make new keys (the others rekey for us).
 */
export function comeBack() {
  const screen = app.screen;
  if (app.resumed === "in_call") {
    if (screen === "in-call") {
      closeCall();
      startCallMedia();
    } else {
      enterCall();
    }
  } else if (screen === "in-call") {
    // Sent back to the waiting room while we were away.
    closeCall();
    enterWaiting(app.position, app.expectedStart);
  } else if (screen !== "waiting") {
    enterWaiting(app.position, app.expectedStart);
  }
}
