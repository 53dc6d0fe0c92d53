// The practitioner's undo of a decline (docs/web_client.md, `undo`): for a few
// seconds after a confirmed Decline, a toast offers to take it back; `undeny`
// gives the person their place again (docs/protocol.md, "Decisions that stick").

import { bindAttr } from "./i18n.js";
import { reasonOf } from "./messages.js";
import * as screens from "./screens.js";
import { app } from "./state.js";

const { byTestId } = screens;
export const UNDO_MS = 8000;
let timer = 0;
let pending = null;
// How the pending undo is sent: `undeny` on the room's connection, or on the desk's
// for a decline in another of the practitioner's rooms (day-screen.js).
let send = null;

function hide() {
  clearTimeout(timer);
  pending = null;
  send = null;
  byTestId("undo-toast").hidden = true;
}

/**
 * Offers to undo the decline of `entryId` ({name}) for UNDO_MS. `undeny(entryId)`
 * sends it (default: `undeny` on this room's connection); it resolves to the ack
 * or throws.
 */
export function offerUndo(entryId, name, undeny = null) {
  clearTimeout(timer);
  pending = entryId;
  send = undeny || ((id) => app.signalling.request("undeny", { entry_id: id }));
  screens.setText("undo-message", { key: "undo.declined", params: { name } });
  screens.setInline("undo-error", null);
  const button = byTestId("undo");
  bindAttr(button, "aria-label", "undo.button_label", { name });
  button.disabled = false;
  byTestId("undo-toast").hidden = false;
  timer = setTimeout(hide, UNDO_MS);
}

/** `undo`: emits `undeny`; the waiting list shows the person back at their place. */
export async function undo() {
  const entryId = pending;
  if (!entryId || !send) return;
  byTestId("undo").disabled = true;
  try {
    const ack = await send(entryId);
    if (ack && ack.ok === false) throw ack.error || {};
    hide();
  } catch (error) {
    screens.setInline("undo-error", { key: "undo.failed", params: { reason: reasonOf(error) } });
  }
}

/** Wraps the waiting list's `deny` action: once it is done, the undo is offered. */
export function withUndo(deny) {
  return async (entryId, name, reason = "") => {
    await deny(entryId, name, reason);
    if (!app.finished) offerUndo(entryId, name);
  };
}
