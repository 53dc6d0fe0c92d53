// The practitioner's view of the waiting room. Entries are updated in place,
// keyed by entry id, so a re-render never steals keyboard focus from an
// Admit or Decline button.

import { askToConfirm } from "./confirm.js";
import { formatTime, formatWaited, parseInstant } from "./format.js";
import { bindAttr, bindText, onLocaleChange, t } from "./i18n.js";
import { byTestId, setInline } from "./screens.js";

const REFRESH_MS = 15_000;

export class WaitingList {
  /**
   * `actions` is {admit(entryId, name), deny(entryId, name, reason)}; both return Promises.
   * `onArrival()` runs when someone new checks in (a chime: the practitioner may be in
   * another tab).
   */
  constructor(actions, { onArrival = () => {} } = {}) {
    this.actions = actions;
    this.onArrival = onArrival;
    this.rendered = false;
    this.list = byTestId("waiting-entries");
    this.items = new Map();
    this.names = new Map();
    this.timer = setInterval(() => this.refreshTimes(), REFRESH_MS);
    onLocaleChange(() => this.refreshTimes());
  }

  /** Name of anyone who was in the list, to label their video once admitted. */
  nameOf(entryId) {
    return this.names.get(entryId) || "";
  }

  render(entries) {
    const valid = (Array.isArray(entries) ? entries : []).filter(
      (entry) => entry && typeof entry.entry_id === "string",
    );
    const wanted = new Set(valid.map((entry) => entry.entry_id));
    for (const [id, item] of this.items) {
      if (!wanted.has(id)) {
        item.element.remove();
        this.items.delete(id);
      }
    }
    const arrivals = [];
    valid.forEach((entry, index) => {
      let item = this.items.get(entry.entry_id);
      if (!item) {
        item = this.createItem(entry);
        this.items.set(entry.entry_id, item);
        arrivals.push(item.name);
      }
      item.since = parseInstant(entry.waiting_since) || item.since;
      item.awaySince = parseInstant(entry.away_since);
      item.element.classList.toggle("is-away", item.awaySince !== null);
      item.element.dataset.away = item.awaySince ? "true" : "false";
      this.names.set(entry.entry_id, item.name);
      const current = this.list.children[index];
      if (current !== item.element) this.list.insertBefore(item.element, current || null);
    });
    this.refreshTimes();
    byTestId("waiting-empty").hidden = this.items.size > 0;
    const count = this.items.size;
    const title = document.getElementById("waiting-list-title");
    bindText(title, count ? "panel.title_count" : "panel.title", { count });
    // A practitioner busy in another tab sees the count in the tab title.
    bindText(document.querySelector("title"), count ? "app.title_count" : "app.title", { count });
    // The first list is who was already there when the consultation opened.
    if (arrivals.length && this.rendered) this.onArrival();
    this.rendered = true;
    if (arrivals.length) {
      bindText(
        byTestId("waiting-announcer"),
        arrivals.length === 1 ? "panel.arrival" : "panel.arrivals",
        { names: arrivals.join(", ") },
      );
    }
  }

  createItem(entry) {
    const name = typeof entry.name === "string" && entry.name ? entry.name : t("panel.a_patient");
    const element = document.createElement("li");
    element.className = "waiting-entry";
    element.dataset.testid = "waiting-entry";
    element.dataset.entryId = entry.entry_id;
    element.dataset.role = entry.role === "guest" ? "guest" : "patient";

    const who = document.createElement("p");
    who.className = "waiting-name";
    who.textContent = name;
    if (entry.role === "guest") {
      const badge = document.createElement("span");
      badge.className = "guest-badge";
      badge.dataset.testid = "guest-badge";
      bindText(badge, "panel.guest_badge");
      who.append(" ", badge);
    }
    const waited = document.createElement("p");
    waited.className = "waiting-time";

    const buttons = document.createElement("div");
    buttons.className = "waiting-actions";
    const admit = actionButton("admit", "panel.admit", name, "button button-primary");
    const deny = actionButton("deny", "panel.deny", name, "button button-secondary");
    const reason = document.createElement("input");
    reason.dataset.testid = "deny-reason";
    reason.maxLength = 300;
    bindAttr(reason, "placeholder", "panel.deny_reason_placeholder");
    bindAttr(reason, "aria-label", "panel.deny_reason_name", { name });
    buttons.append(admit, reason, deny);
    element.append(who, waited, buttons);

    const item = {
      element,
      waited,
      name,
      since: parseInstant(entry.waiting_since),
      awaySince: null,
    };
    const run = async (action) => {
      admit.disabled = true;
      deny.disabled = true;
      setInline("waiting-list-error", null);
      try {
        await action(entry.entry_id, name, reason.value);
      } catch (error) {
        setInline("waiting-list-error", error.text || "errors.generic");
        admit.disabled = false;
        deny.disabled = false;
      }
    };
    admit.addEventListener("click", () => run(this.actions.admit));
    deny.addEventListener("click", async () => {
      const confirmed = await askToConfirm({
        message: { key: "confirm.deny", params: { name } },
        confirmLabel: { key: "confirm.deny_button", params: { name } },
      });
      if (confirmed && element.isConnected) run(this.actions.deny);
    });
    return item;
  }

  refreshTimes() {
    const now = Date.now();
    for (const item of this.items.values()) {
      const waited = item.since ? formatWaited(item.since, now) : t("waited.unknown");
      // Their connection dropped; the place is kept for a while in case they come back.
      item.waited.textContent = item.awaySince
        ? t("panel.away_since", { waited, time: formatTime(item.awaySince) })
        : waited;
    }
  }

  stop() {
    clearInterval(this.timer);
    bindText(document.querySelector("title"), "app.title");
  }
}

/** Visible text stays short ("Admit"); its accessible name says whom ("Admit Alice Martin"). */
function actionButton(testId, key, name, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.dataset.testid = testId;
  bindText(button, key);
  bindAttr(button, "aria-label", `${key}_name`, { name });
  return button;
}
