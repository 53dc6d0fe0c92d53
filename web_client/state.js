// The join page's state (docs/web_client.md, "States"): the screen showing and
// everything the flow decides on. The modules decide from this object, never
// from the DOM; `body[data-state]` is written from `app.screen` by `show()`.

import * as screens from "./screens.js";
import { timeline } from "./timeline.js";

// Read by the end-to-end tests: performance.now() of admission and of the
// first decoded remote video frame.
export const metrics = {
  admittedAt: null,
  firstRemoteFrameAt: null,
  mediaRestarts: 0,
  // The call's latest quality measures (call-quality.js), null outside a call.
  quality: null,
  // performance.now() of each step of joining the call (timeline.js).
  timeline,
};

export const app = {
  // One of screens.STATES; index.html starts on `precall`.
  screen: "precall",
  signalling: null,
  session: null,
  role: "patient",
  stream: null,
  // Why the camera is not there (a catalogue key), or null: the call is then audio only.
  cameraProblem: null,
  // The person switched to audio only during the call: the camera is released.
  audioOnly: false,
  // The chosen speaker (setSinkId), "" for the system's default.
  speakerId: "",
  startingDevices: false,
  micLevel: null,
  call: null,
  // End-to-end encryption of the call: null until the call starts, and when
  // the server runs with it off (session.e2ee === "off", for diagnostics only).
  e2ee: null,
  waitingList: null,
  // The practitioner's day beside the call (day-screen.js): {close(), nameOf(entryId)}.
  desk: null,
  // Moving into another room of the day (room-switch.js).
  moving: false,
  everConnected: false,
  failedAttempts: 0,
  // When the connection dropped (Date.now()), while reconnecting.
  disconnectedAt: 0,
  resumeSecret: null,
  // Where the server put us back after a reload or reconnection: "waiting",
  // "in_call", or null (a fresh start).
  resumed: null,
  checkingIn: false,
  position: null,
  // The latest estimate from `waiting` (an ISO instant), shown under the position.
  expectedStart: null,
  hangingUp: false,
  // A terminal screen (ended, denied, closed, error) is showing: late events are ignored.
  finished: false,
  opensAt: null,
  openTimer: 0,
  // The too-early screen's countdown (setInterval).
  countdownTimer: 0,
  watchdog: 0,
};

/** Makes `screen` the current one and renders it (focus moves only on a change). */
export function show(screen) {
  if (!screens.STATES.includes(screen)) throw new Error(`unknown state ${screen}`);
  const changed = app.screen !== screen;
  app.screen = screen;
  screens.showState(screen, { focus: changed });
}

export function practitionerName() {
  return (app.session && app.session.room && app.session.room.practitioner_name) || "";
}

export function e2eeRequired() {
  return !(app.session && app.session.e2ee === "off");
}
