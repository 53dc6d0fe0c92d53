// Boot of the join page (docs/web_client.md): checks the link and the browser,
// wires the buttons and the server's Socket.IO events (docs/protocol.md) to
// the modules that handle them. The state lives in state.js; every failure
// ends on a screen that says what happened and, where it can help, offers to
// retry (endings.js).

import { onChat, sendChat } from "./call-chat.js";
import { hangUp, toggle, toggleAudioOnly } from "./call-controls.js";
import { insecurePage } from "./browser-support.js";
import { onMediaState } from "./call-quality.js";
import { onMediaRestart, onSubscriptionClosed, onSubscriptionOffer } from "./call-screen.js";
import {
  armSessionWatchdog,
  onConnect,
  onConnectError,
  onDisconnect,
  onVisible,
} from "./connection.js";
import { runConnectionTest } from "./connection-test.js";
import { startDayScreen } from "./day-screen.js";
import { continueAudioOnly, onCheckInClick, retryCamera } from "./device-check.js";
import { wireDeviceChoice } from "./device-choice.js";
import { finish, onRoomEnded, pageFailed } from "./endings.js";
import {
  chooseLocale,
  currentLocale,
  deploymentLocale,
  loadCatalogues,
  onLocaleChange,
  rememberLocale,
  setLocale,
  storedLocale,
} from "./i18n.js";
import { takeJoinLink } from "./link.js";
import * as text from "./messages.js";
import { resumeOnVisible, startAudio } from "./playback.js";
import { copyGuestLink, inviteGuest, onWaitingList } from "./practitioner-tools.js";
import { onReplaced, takeBack } from "./replaced-screen.js";
import { ResumeSecret } from "./resume.js";
import { configureRoomSwitch } from "./room-switch.js";
import { byTestId } from "./screens.js";
import { onSession } from "./session.js";
import { Signalling } from "./signalling.js";
import { app, metrics, show } from "./state.js";
import { testDevicesEarly } from "./too-early.js";
import { undo } from "./undo-deny.js";
import {
  leaveWaitingRoom,
  onAdmitted,
  onDenied,
  onPractitionerMessage,
  onReturnedToWaiting,
  onUndenied,
  onWaiting,
} from "./waiting-screen.js";
import { sendReply } from "./waiting-reply.js";

window.teleconsultMetrics = metrics;

function wireControls() {
  byTestId("check-in").addEventListener("click", onCheckInClick);
  byTestId("connection-test").addEventListener("click", runConnectionTest);
  byTestId("leave-waiting").addEventListener("click", leaveWaitingRoom);
  byTestId("toggle-mic").addEventListener("click", () => toggle("audio"));
  byTestId("toggle-camera").addEventListener("click", () => toggle("video"));
  byTestId("hang-up").addEventListener("click", hangUp);
  byTestId("audio-only").addEventListener("click", toggleAudioOnly);
  byTestId("audio-only-accept").addEventListener("click", () => {
    if (!app.audioOnly) toggleAudioOnly();
  });
  byTestId("audio-only-continue").addEventListener("click", continueAudioOnly);
  byTestId("camera-retry").addEventListener("click", () => retryCamera().catch(pageFailed));
  wireDeviceChoice();
  byTestId("start-audio").addEventListener("click", startAudio);
  byTestId("retry").addEventListener("click", () => location.reload());
  byTestId("early-device-test").addEventListener("click", () => testDevicesEarly().catch(pageFailed));
  byTestId("invite-guest-form").addEventListener("submit", inviteGuest);
  byTestId("copy-guest-link").addEventListener("click", copyGuestLink);
  byTestId("chat-form").addEventListener("submit", sendChat);
  byTestId("reply-form").addEventListener("submit", sendReply);
  byTestId("take-back").addEventListener("click", takeBack);
  byTestId("undo").addEventListener("click", undo);
  const switcher = byTestId("language-switcher");
  switcher.value = currentLocale();
  switcher.addEventListener("change", () => {
    rememberLocale(switcher.value);
    setLocale(switcher.value);
  });
  onLocaleChange((locale) => {
    switcher.value = locale;
  });
  document.addEventListener("visibilitychange", onVisible);
  document.addEventListener("visibilitychange", resumeOnVisible);
}

function wireSignalling(signalling) {
  // A connection the practitioner moved away from (room-switch.js) is heard no more.
  const on = (event, handler) =>
    signalling.on(event, (...args) => {
      if (app.signalling === signalling) handler(...args);
    });
  on("connect", onConnect);
  on("connect_error", onConnectError);
  on("disconnect", onDisconnect);
  on("session", (session) => {
    onSession(session);
    startDayScreen(session);
  });
  on("waiting", onWaiting);
  on("admitted", onAdmitted);
  on("denied", onDenied);
  on("returned_to_waiting", onReturnedToWaiting);
  on("replaced", onReplaced);
  on("undenied", onUndenied);
  on("practitioner_message", onPractitionerMessage);
  on("waiting_list", onWaitingList);
  on("subscription_offer", onSubscriptionOffer);
  on("subscription_closed", onSubscriptionClosed);
  on("media_restart", onMediaRestart);
  on("media_state", onMediaState);
  on("room_ended", onRoomEnded);
  on("e2ee_hello", (message) => app.e2ee && app.e2ee.onHello(message));
  on("e2ee_key", (message) => app.e2ee && app.e2ee.onKey(message));
  on("e2ee_peer_left", (message) => app.e2ee && app.e2ee.onPeerLeft(message));
  on("chat", onChat);
}

/** The language before anything is shown: remembered choice, link, browser, deployment. */
async function startLanguage(linkLocale) {
  try {
    await loadCatalogues();
  } catch {
    // Without catalogues the keys show; the page still works.
  }
  setLocale(
    chooseLocale({
      stored: storedLocale(),
      forced: linkLocale,
      languages: navigator.languages || [navigator.language],
      fallback: deploymentLocale(),
    }),
  );
}

async function boot() {
  window.addEventListener("error", pageFailed);
  window.addEventListener("unhandledrejection", pageFailed);
  const { roomId, token, locale } = takeJoinLink(window);
  await startLanguage(locale);
  wireControls();
  show("precall");

  if (!roomId || !token) {
    finish({ state: "error", title: "error.incomplete_title", message: text.INCOMPLETE_LINK });
    return;
  }
  if (insecurePage()) {
    // Before connecting: over plain http the token would travel in clear.
    finish({ state: "error", title: "browsers.insecure_title", message: "browsers.insecure" });
    return;
  }
  if (typeof window.io !== "function") {
    finish({ state: "error", title: "error.page_failed_title", message: text.PAGE_FAILED, retry: true });
    return;
  }
  // Whether the browser can hold the call is checked at `session` (session.js):
  // the refusal then comes in the appointment's language, with whom to contact.

  // Only patients and guests are given one (the role is known at `session`).
  const resumeSecret = new ResumeSecret(roomId);
  app.resumeSecret = resumeSecret;
  app.signalling = new Signalling(
    { token, roomId, resumeSecret: () => resumeSecret.get() },
    window.io,
  );
  wireSignalling(app.signalling);
  configureRoomSwitch(wireSignalling);
  armSessionWatchdog();
}

boot();
