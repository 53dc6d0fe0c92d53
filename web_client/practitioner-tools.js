// The practitioner's tools beside the call (docs/web_client.md, `waiting-list`
// and `invite-guest-form`): the waiting list with Admit and Decline, "Send back
// to waiting room" on a tile, and guest invitations.

import { chime } from "./chime.js";
import { endedByAck } from "./endings.js";
import { reasonOf } from "./messages.js";
import * as screens from "./screens.js";
import { app, metrics } from "./state.js";
import { withUndo } from "./undo-deny.js";
import { WaitingList } from "./waiting-list.js";

const { byTestId } = screens;

/** The practitioner's waiting list, made once (it keeps its entries across screens). */
export function ensureWaitingList() {
  if (app.role !== "practitioner" || app.waitingList) return;
  app.waitingList = new WaitingList(
    { admit: decide("admit"), deny: withUndo(decide("deny")) },
    { onArrival: chime },
  );
}

export function onWaitingList(payload) {
  if (app.finished || app.role !== "practitioner" || !app.waitingList) return;
  app.waitingList.render(payload && payload.entries);
}

/** A failed request, with the sentence to show for it (a text spec). */
class ActionError extends Error {
  constructor(text) {
    super(text.key);
    this.text = text;
  }
}

/** A request about one entry (admit, deny, return_to_waiting) that throws an ActionError. */
function decide(event) {
  const key = `panel.${event}_failed`;
  return async (entryId, name, reason = "") => {
    if (event === "admit" && metrics.admittedAt === null) metrics.admittedAt = performance.now();
    const payload = { entry_id: entryId };
    if (event === "deny" && reason.trim()) payload.reason = reason.trim();
    try {
      await app.signalling.request(event, payload);
    } catch (error) {
      if (endedByAck(error)) return;
      throw new ActionError({ key, params: { name, reason: reasonOf(error) } });
    }
  };
}

/** "Send back to waiting room" on the tile of a patient's or guest's video. */
export function addSendBack(subscriptionId, label, publisherId) {
  const sendBack = decide("return_to_waiting");
  screens.addReturnToWaiting(subscriptionId, label, async (button) => {
    button.disabled = true;
    screens.setInline("waiting-list-error", null);
    try {
      await sendBack(publisherId, label);
    } catch (error) {
      screens.setInline("waiting-list-error", error.text || "errors.generic");
      button.disabled = false;
    }
  });
}

export async function inviteGuest(event) {
  event.preventDefault();
  const input = byTestId("invite-guest");
  const submit = byTestId("invite-guest-submit");
  const name = input.value.trim();
  screens.setInline("invite-guest-error", null);
  if (!name) {
    screens.setInline("invite-guest-error", "panel.guest_name_missing");
    return;
  }
  submit.disabled = true;
  try {
    const ack = await app.signalling.request("invite_guest", { name });
    if (typeof ack.link !== "string") throw Object.assign(new Error("no link"), { code: "invalid_response" });
    input.value = "";
    screens.showGuestLink(name, ack.link);
  } catch (error) {
    if (endedByAck(error)) return;
    screens.setInline("invite-guest-error", {
      key: "panel.invite_failed",
      params: { name, reason: reasonOf(error) },
    });
  } finally {
    submit.disabled = false;
  }
}

export async function copyGuestLink() {
  const field = byTestId("guest-link");
  try {
    await navigator.clipboard.writeText(field.value);
    screens.setText("copy-guest-link-status", "panel.copied");
  } catch {
    // No clipboard permission: leave it selected for Ctrl+C.
    field.select();
    screens.setText("copy-guest-link-status", "panel.copy_by_hand");
  }
}
