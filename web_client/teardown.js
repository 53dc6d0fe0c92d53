// Letting go of what the page holds: pending timers, the camera and
// microphone, and the call's connections and keys.

import { stopQuality } from "./call-quality.js";
import { stopStream } from "./devices.js";
import * as screens from "./screens.js";
import { app } from "./state.js";

/** Everything goes: timers, the meter, the call, the camera and microphone. */
export function releaseMedia() {
  clearTimeout(app.openTimer);
  clearTimeout(app.watchdog);
  stopMicLevel();
  closeCall();
  stopStream(app.stream);
  app.stream = null;
  screens.clearVideos();
}

/** Ends our part of the call (connections, keys, remote videos); the camera stays on. */
export function closeCall() {
  stopQuality();
  if (app.call) app.call.close();
  app.call = null;
  if (app.e2ee) app.e2ee.close();
  app.e2ee = null;
  screens.clearRemoteVideos();
  screens.renderSafetyCode(null);
  screens.renderE2eeStatus("pending");
}

/** The microphone meter runs on the device check only. */
export function stopMicLevel() {
  if (app.micLevel) app.micLevel.stop();
  app.micLevel = null;
}
