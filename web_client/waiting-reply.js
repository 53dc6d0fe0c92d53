// A waiting patient's answer to the practitioner (docs/web_client.md,
// `reply-form`): "I'm in the car park, two minutes". Short text, sent with
// `reply` (docs/protocol.md) to the practitioner only; the server keeps none.

import { reasonOf } from "./messages.js";
import * as screens from "./screens.js";
import { app } from "./state.js";

const { byTestId } = screens;

/** Offered once the practitioner has written to the waiting room. */
export function showReplyForm() {
  byTestId("reply-form").hidden = false;
}

export async function sendReply(event) {
  event.preventDefault();
  const input = byTestId("reply-input");
  const text = input.value.trim();
  if (!text || !app.signalling) return;
  const send = byTestId("reply-send");
  send.disabled = true;
  try {
    await app.signalling.request("reply", { text });
    input.value = "";
    screens.setText("reply-status", "dayscreen.reply_sent");
  } catch (error) {
    screens.setText("reply-status", { key: "dayscreen.reply_failed", params: { reason: reasonOf(error) } });
  } finally {
    send.disabled = false;
  }
}
