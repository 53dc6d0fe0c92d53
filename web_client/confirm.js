// The one extra click before a destructive action (decline a patient, end the
// consultation, leave the call), on the join page and the desk: a modal
// <dialog> that names what will happen and to whom. Its confirm button is
// `data-testid=confirm`; Cancel, Escape or a click outside it keep things as
// they were. Focus starts on Cancel and goes back where it was.

import { bindText } from "./i18n.js";

function part(dialog, testId) {
  return dialog.querySelector(`[data-testid="${testId}"]`);
}

/** Closes an open confirmation as a Cancel (the page ended meanwhile). */
export function dismissConfirm() {
  const dialog = document.querySelector('[data-testid="confirm-dialog"]');
  if (dialog && dialog.open) dialog.close();
}

/**
 * Asks before doing it. `message` and `confirmLabel` are `{key, params}`.
 * @returns {Promise<boolean>} true when the person confirmed
 */
export function askToConfirm({ message, confirmLabel }) {
  const dialog = document.querySelector('[data-testid="confirm-dialog"]');
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(true);
  const opener = document.activeElement;
  // The desk rebuilds its rows on live updates: find the same control again by its key.
  const openerKey = opener && opener.dataset ? opener.dataset.key : "";
  bindText(part(dialog, "confirm-message"), message.key, message.params);
  bindText(part(dialog, "confirm"), confirmLabel.key, confirmLabel.params);
  if (dialog.open) dialog.close("cancel");
  return new Promise((resolve) => {
    const confirm = part(dialog, "confirm");
    const cancel = part(dialog, "confirm-cancel");
    const done = (answer) => {
      confirm.removeEventListener("click", onConfirm);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      const back =
        opener && opener.isConnected
          ? opener
          : openerKey && document.querySelector(`[data-key="${CSS.escape(openerKey)}"]`);
      if (back && typeof back.focus === "function") back.focus();
      resolve(answer);
    };
    const onConfirm = () => done(true);
    const onCancel = () => done(false);
    const onClose = () => done(false);
    confirm.addEventListener("click", onConfirm);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    cancel.focus();
  });
}
