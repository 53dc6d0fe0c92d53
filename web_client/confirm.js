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
 * Asks before doing it. `message` and `confirmLabel` are `{key, params}`;
 * `alternative` (optional, `{key, params}`) is a second way to go ahead, on
 * the `confirm-alternative` button (say, pause a consultation rather than end it).
 * @returns {Promise<boolean | "alternative">} true when the person confirmed,
 *   "alternative" when they chose the alternative, false otherwise
 */
export function askToConfirm({ message, confirmLabel, alternative = null }) {
  const dialog = document.querySelector('[data-testid="confirm-dialog"]');
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(true);
  const opener = document.activeElement;
  // The desk rebuilds its rows on live updates: find the same control again by its key.
  const openerKey = opener && opener.dataset ? opener.dataset.key : "";
  bindText(part(dialog, "confirm-message"), message.key, message.params);
  bindText(part(dialog, "confirm"), confirmLabel.key, confirmLabel.params);
  const other = part(dialog, "confirm-alternative");
  if (other) {
    other.hidden = !alternative;
    if (alternative) bindText(other, alternative.key, alternative.params);
  }
  if (dialog.open) dialog.close("cancel");
  return new Promise((resolve) => {
    const confirm = part(dialog, "confirm");
    const cancel = part(dialog, "confirm-cancel");
    const onAlternative = () => done("alternative");
    if (other && alternative) other.addEventListener("click", onAlternative);
    const done = (answer) => {
      if (other) other.removeEventListener("click", onAlternative);
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
