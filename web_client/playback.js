// Playing the call's <video> elements where browsers hold them back
// (docs/browsers.md): sound that needs a tap first (Safari, and any browser
// whose autoplay policy blocks it), and videos a background tab paused
// (Safari on iOS pauses them) that must play again when the tab comes back.

import * as screens from "./screens.js";

const { byTestId } = screens;

/** Plays `video`; a blocked autoplay shows the "Turn on sound" button instead. */
export function playRemote(video) {
  const started = video.play();
  if (!started) return;
  started.catch((error) => {
    // Only a blocked autoplay needs the person's tap; other rejections mean
    // the element was reloaded or removed meanwhile.
    if (error && error.name === "NotAllowedError") byTestId("start-audio").hidden = false;
  });
}

/** The "Turn on sound" tap after the browser blocked autoplay: a gesture, so play() may start. */
export function startAudio() {
  byTestId("start-audio").hidden = true;
  for (const video of screens.remoteVideos()) playRemote(video);
}

/** Back from the background: every video of the call that was paused plays again. */
export function resumeOnVisible() {
  if (document.visibilityState !== "visible") return;
  for (const video of screens.remoteVideos()) {
    if (video.paused && video.srcObject) playRemote(video);
  }
  const local = byTestId("local-video");
  if (local.paused && local.srcObject) local.play().catch(() => {}); // Muted: never blocked.
}
