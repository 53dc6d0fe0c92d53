// The Socket.IO connection's life (docs/web_client.md, "Connection problems"):
// the first connection, refusals, reconnection after a drop, and waiting for
// a room that is not open yet.

import { finish } from "./endings.js";
import { parseInstant } from "./format.js";
import { applyAppointmentLocale } from "./i18n.js";
import * as text from "./messages.js";
import * as screens from "./screens.js";
import { app, show } from "./state.js";
import { releaseMedia } from "./teardown.js";
import { renderTooEarly } from "./too-early.js";

// Before a first successful connection a few failures mean "unreachable";
// once connected, socket.io keeps retrying for a while before we give up.
const FIRST_CONNECT_ATTEMPTS = 3;
// The server keeps a patient's place for 2 minutes by default; keep trying a
// little longer than that before saying the connection is lost.
const RECONNECT_GIVE_UP_MS = 130_000;
// setTimeout overflows above this; longer waits are re-armed when they fire.
const MAX_TIMER_MS = 2 ** 31 - 1;
// Retry a little after the opening time (clocks differ), never in a tight loop.
const OPEN_RETRY_MARGIN_MS = 2000;
const OPEN_RETRY_MIN_MS = 5000;
// However a connection attempt fails, "Connecting…" never stays up longer.
const SESSION_WATCHDOG_MS = 30_000;

/** Gives up on connecting if no `session` comes in time; `session` disarms it. */
export function armSessionWatchdog() {
  clearTimeout(app.watchdog);
  app.watchdog = setTimeout(() => {
    if (app.finished || app.session) return;
    finish({
      state: "error",
      title: "error.title",
      message: text.NETWORK_UNREACHABLE,
      retry: true,
    });
  }, SESSION_WATCHDOG_MS);
}

export function onConnect() {
  app.everConnected = true;
  app.failedAttempts = 0;
  app.disconnectedAt = 0;
}

export function onConnectError(error) {
  if (app.finished) return;
  const data = error && error.data;
  if (data && typeof data.code === "string") {
    refused(data);
    return;
  }
  // A network failure: socket.io retries by itself, we only count.
  app.failedAttempts += 1;
  const givingUp = app.everConnected
    ? app.disconnectedAt !== 0 && Date.now() - app.disconnectedAt >= RECONNECT_GIVE_UP_MS
    : app.failedAttempts >= FIRST_CONNECT_ATTEMPTS;
  if (givingUp) {
    const wasInCall = app.screen === "in-call";
    finish({
      state: "error",
      title: wasInCall ? "error.connection_lost_title" : "error.title",
      message: wasInCall ? text.CONNECTION_LOST : text.NETWORK_UNREACHABLE,
      retry: true,
      retryLabel: wasInCall ? "error.rejoin" : "error.try_again",
    });
  } else if (app.everConnected) {
    screens.showNotice("connection-notice", "notice.reconnecting");
  }
}

export function onDisconnect(reason) {
  if (app.finished || reason === "io client disconnect") return;
  if (!app.disconnectedAt) app.disconnectedAt = Date.now();
  screens.showNotice("connection-notice", "notice.reconnecting");
  // socket.io reconnects by itself except after a server-side disconnect.
  if (reason === "io server disconnect") app.signalling.connect();
}

function refused(data) {
  // A genuine link refused (too early, closed) still carries its appointment's language.
  applyAppointmentLocale(data.locale);
  if (data.code === "room_not_yet_open") {
    notYetOpen(parseInstant(data.opens_at), data);
    return;
  }
  if (data.code === "rate_limited") {
    // Too many connections on this link (reloads, several tabs): try again when told.
    screens.showNotice("connection-notice", "notice.reconnecting");
    const wait = Number.isFinite(data.retry_after) ? data.retry_after : 5;
    setTimeout(() => app.finished || app.signalling.connect(), Math.max(1, wait) * 1000);
    return;
  }
  // A genuine but late link also says whom to contact.
  screens.renderPractice(data.practice);
  finish(text.outcomeForCode(data.code, data));
}

function notYetOpen(opensAt, details) {
  // The next `session` starts afresh; a camera test begun here is kept for it.
  if (app.screen === "not-yet-open") clearTimeout(app.watchdog);
  else releaseMedia(); // Also disarms the session watchdog: waiting here is expected.
  app.session = null;
  app.opensAt = opensAt;
  screens.showNotice("connection-notice", null);
  renderTooEarly(opensAt, details);
  show("not-yet-open");
  scheduleOpenRetry();
}

function scheduleOpenRetry() {
  clearTimeout(app.openTimer);
  const opensAt = app.opensAt;
  const wait = opensAt ? opensAt.getTime() + OPEN_RETRY_MARGIN_MS - Date.now() : 60_000;
  app.openTimer = setTimeout(
    () => {
      if (opensAt && Date.now() + OPEN_RETRY_MARGIN_MS < opensAt.getTime()) {
        scheduleOpenRetry(); // Woke early: the wait was longer than one timer.
      } else {
        retryConnect();
      }
    },
    Math.min(Math.max(wait, OPEN_RETRY_MIN_MS), MAX_TIMER_MS),
  );
}

function retryConnect() {
  if (app.finished || app.screen !== "not-yet-open") return;
  clearTimeout(app.openTimer);
  app.failedAttempts = 0;
  armSessionWatchdog();
  app.signalling.connect();
}

/** Timers in background tabs and sleeping laptops fire late: check on return. */
export function onVisible() {
  if (document.visibilityState !== "visible") return;
  if (app.screen !== "not-yet-open" || !app.opensAt) return;
  if (Date.now() >= app.opensAt.getTime()) retryConnect();
}
