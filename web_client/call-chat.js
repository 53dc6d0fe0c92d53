// The in-call text chat (docs/web_client.md, `chat`): for spelling a drug
// name or pasting an address. Messages are sealed end to end with the call's
// media keys (e2ee.js, e2ee-chat.js) and shown as text, never as HTML; there
// is no file transfer. Without end-to-end encryption (a diagnostic server)
// there is no chat: the server must never see the text.

import { CHAT_MAX_CHARS } from "./e2ee-chat.js";
import { bindText, t } from "./i18n.js";
import { reasonOf } from "./messages.js";
import * as screens from "./screens.js";
import { app } from "./state.js";

const { byTestId } = screens;
const MAX_SHOWN = 200;
// Entry id -> the name its tile shows (call-screen.js tells us).
const speakers = new Map();

export function rememberSpeaker(entryId, name) {
  if (entryId && typeof name === "string" && name) speakers.set(entryId, name);
}

/** The name known for someone in the call (from their subscription offer or tile), or "". */
export function knownName(entryId) {
  return speakers.get(entryId) || "";
}

/** Shown in a call whose media is end-to-end encrypted, hidden otherwise. */
export function showChat(encrypted) {
  byTestId("chat").hidden = !encrypted;
}

/** A new consultation starts with an empty chat. */
export function clearChat() {
  byTestId("chat-messages").replaceChildren();
  screens.setInline("chat-error", null);
  speakers.clear();
}

function addMessage(who, text, mine = false) {
  const item = document.createElement("li");
  item.className = mine ? "chat-message is-mine" : "chat-message";
  item.dataset.testid = "chat-message";
  item.dataset.from = mine ? "me" : "peer";
  const name = document.createElement("strong");
  bindText(name, "dayscreen.chat_from", { name: who });
  const body = document.createElement("span");
  if (text === null) bindText(body, "dayscreen.chat_unreadable");
  else body.textContent = text; // Typed by a person: text, never HTML.
  item.append(name, " ", body);
  const list = byTestId("chat-messages");
  list.append(item);
  while (list.children.length > MAX_SHOWN) list.firstChild.remove();
  item.scrollIntoView({ block: "nearest" });
}

export async function sendChat(event) {
  event.preventDefault();
  const input = byTestId("chat-input");
  const text = input.value.trim().slice(0, CHAT_MAX_CHARS);
  if (!text || !app.e2ee || !app.signalling) return;
  const send = byTestId("chat-send");
  send.disabled = true;
  screens.setInline("chat-error", null);
  try {
    const sealed = await app.e2ee.sealChat(text);
    if (!sealed) return; // The call ended meanwhile.
    await app.signalling.request("chat", sealed);
    input.value = "";
    addMessage(t("dayscreen.chat_you"), text, true);
  } catch (error) {
    screens.setInline("chat-error", { key: "dayscreen.chat_failed", params: { reason: reasonOf(error) } });
  } finally {
    send.disabled = false;
  }
}

export async function onChat(message) {
  if (app.finished || !app.e2ee || !message || typeof message.from !== "string") return;
  const text = await app.e2ee.openChat(message);
  if (app.finished) return;
  addMessage(speakers.get(message.from) || t("dayscreen.chat_someone"), text);
}
