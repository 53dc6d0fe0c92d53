// The server's `session` (docs/protocol.md): the first one starts the device
// check; a later one, after a reconnection, says whether we kept our place.

import { comeBack } from "./coming-back.js";
import { cannotCall, cannotEncrypt } from "./browser-support.js";
import { checkIn, startPrecall } from "./device-check.js";
import { transformSupport } from "./e2ee.js";
import { finish, pageFailed } from "./endings.js";
import { applyAppointmentLocale } from "./i18n.js";
import * as text from "./messages.js";
import * as screens from "./screens.js";
import { app, e2eeRequired } from "./state.js";
import { onDenied } from "./waiting-screen.js";

/** The appointment's language (unless the person chose one here) and the practice. */
function applyAppointment(session) {
  applyAppointmentLocale(session.locale);
  screens.renderPractice(session.practice);
}

export function onSession(session) {
  if (app.finished) return;
  if (!session || typeof session !== "object") {
    pageFailed();
    return;
  }
  clearTimeout(app.watchdog);
  const again = app.session !== null;
  app.session = session;
  app.role = session.role === "practitioner" ? "practitioner" : "patient";
  // A fresh entry comes with a fresh secret; a resumed one keeps ours.
  if (typeof session.resume === "string" && app.resumeSecret) app.resumeSecret.set(session.resume);
  app.resumed = ["waiting", "in_call"].includes(session.resumed) ? session.resumed : null;
  screens.showNotice("connection-notice", null);
  applyAppointment(session);
  if (session.denied) {
    // Declined stays declined on every device until re-opened (protocol.md).
    onDenied(session.denied);
    return;
  }
  if (app.call) app.call.setIceServers(session.ice_servers);
  if (!again) {
    const blocked = cannotCall();
    if (blocked) {
      finish({ state: "error", title: "error.browser_title", message: blocked });
      return;
    }
    if (e2eeRequired() && !transformSupport()) {
      // Never a silently unencrypted call.
      finish({ state: "error", title: "error.browser_title", message: cannotEncrypt() });
      return;
    }
    startPrecall().catch(pageFailed);
    return;
  }
  const screen = app.screen;
  const mine = app.role === "patient" || app.resumed === "in_call";
  if (app.resumed && mine && (screen === "in-call" || screen === "waiting")) {
    comeBack();
    return;
  }
  // Not resumed: the server has treated the old connection as gone.
  if (screen === "in-call") {
    finish({
      state: "error",
      title: "error.connection_lost_title",
      message: text.CONNECTION_LOST,
      retry: true,
      retryLabel: "error.rejoin",
    });
  } else if (screen === "waiting" && app.role === "patient") {
    app.position = null;
    checkIn();
  }
}
