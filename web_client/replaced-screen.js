// The `replaced` screen (docs/web_client.md): the same link was opened in
// another tab or on another device, which took this person's place (in the
// queue or in the call) over; the server disconnected us. "Take it back"
// connects again, which takes the place over in turn (docs/protocol.md, "One
// person, one entry").

import { finish } from "./endings.js";

/** The server's `replaced`: end here, everything released, and offer to take it back. */
export function onReplaced() {
  finish({ state: "replaced", title: "replaced.title", message: "replaced.message" });
}

/** `take-back`: a fresh page on the same link (the tab keeps the link for a reload). */
export function takeBack() {
  location.reload();
}
