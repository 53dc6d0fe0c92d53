"""Unit tests of the browser's key schedule and frame format, run in headless Chromium.

The modules under test are the web client's own (`/static/e2ee-keys.js`,
`/static/e2ee-frame.js`), imported into a page of the live server so that
WebCrypto behaves exactly as in a call. No node.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from tests.conftest import LiveServer
from tests.support.browser import chromium

pytestmark = pytest.mark.browser

# Helpers every scenario below starts with; `page.evaluate` runs it as a function.
PRELUDE = """
const keys = await import("/static/e2ee-keys.js");
const frame = await import("/static/e2ee-frame.js");
const person = async () => ({ id: await keys.Identity.create() });
const deliver = async (sender, recipient, kid, raw) => {
  const out = await sender.id.pairWith(recipient.id.publicKey);
  const blob = await keys.wrapMediaKey(out.outgoing, kid, raw, sender.id.publicKey,
                                       recipient.id.publicKey);
  const back = await recipient.id.pairWith(sender.id.publicKey);
  const opened = await keys.unwrapMediaKey(back.incoming, blob, sender.id.publicKey,
                                           recipient.id.publicKey);
  return { blob, opened };
};
const frameKey = async (raw, kid) =>
  frame.deriveFrameKey(await keys.importMediaKey(raw.slice()), kid);
// A VP8 key frame: tag with the key-frame bit clear, start code, 64x64.
const vp8Key = (n) => {
  const data = new Uint8Array(n);
  data.set([0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x00, 0x40, 0x00]);
  for (let i = 10; i < n; i += 1) data[i] = i % 251;
  return data.buffer;
};
const vp8Delta = (n) => {
  const data = new Uint8Array(vp8Key(n));
  data[0] |= 0x01;
  return data.buffer;
};
const bytes = (buffer) => Array.from(new Uint8Array(buffer));
"""


async def run(page: Page, body: str) -> Any:
    return await page.evaluate(f"async () => {{ {PRELUDE}\n{body} }}")


async def module_page(server: LiveServer, browser: Any) -> Page:
    page: Page = await browser.new_page()
    # Any page of the server: same origin and same CSP as the call page.
    await page.goto(server.base_url + "/healthz")
    return page


async def test_after_a_leave_the_new_key_is_unreadable_with_the_old_one(
    live_server: LiveServer,
) -> None:
    async with chromium() as browser:
        page = await module_page(live_server, browser)
        result = await run(
            page,
            """
const [alice, bob, carol, dave] = await Promise.all([person(), person(), person(), person()]);
const sender = new frame.FrameEncryptor();

// Key 1: Bob and Carol are in the call.
const raw1 = keys.newMediaKey();
const toBob1 = await deliver(alice, bob, 1, raw1);
const toCarol1 = await deliver(alice, carol, 1, raw1);
sender.setKey(await frameKey(raw1, 1));
const before = await sender.encrypt("video", vp8Key(400));

const bobRx = new frame.FrameDecryptor();
bobRx.addKey(await frameKey(toBob1.opened.raw, toBob1.opened.kid));
const carolRx = new frame.FrameDecryptor();
carolRx.addKey(await frameKey(toCarol1.opened.raw, toCarol1.opened.kid));
const bobBefore = await bobRx.decrypt("video", before.slice(0));
const carolBefore = await carolRx.decrypt("video", before.slice(0));

// Carol leaves: key 2 goes to Bob only.
const raw2 = keys.newMediaKey();
const toBob2 = await deliver(alice, bob, 2, raw2);
sender.setKey(await frameKey(raw2, 2));
const after = await sender.encrypt("video", vp8Delta(300));
bobRx.addKey(await frameKey(toBob2.opened.raw, toBob2.opened.kid));

// Carol still holds key 1, and also gets hold of the blob meant for Bob.
const carolFromBob = await carol.id.pairWith(alice.id.publicKey);
const stolen = await keys.unwrapMediaKey(carolFromBob.incoming, toBob2.blob,
                                         alice.id.publicKey, carol.id.publicKey);
// Even a key-1 decryptor given key id 2's frame under key 1's material fails.
const forged = new frame.FrameDecryptor();
forged.addKey({ ...(await frameKey(toCarol1.opened.raw, 1)), kid: 2 });

// Dave is admitted: key 3 goes to Bob and Dave; Dave never gets keys 1 or 2.
const raw3 = keys.newMediaKey();
const toDave3 = await deliver(alice, dave, 3, raw3);
const daveRx = new frame.FrameDecryptor();
daveRx.addKey(await frameKey(toDave3.opened.raw, toDave3.opened.kid));
sender.setKey(await frameKey(raw3, 3));
const third = await sender.encrypt("audio", new Uint8Array([0xfc, 1, 2, 3, 4]).buffer);

return {
  bobBefore: bobBefore && bytes(bobBefore).join() === bytes(vp8Key(400)).join(),
  carolBefore: carolBefore !== null,
  bobAfter: bytes(await bobRx.decrypt("video", after.slice(0))).join() ===
    bytes(vp8Delta(300)).join(),
  carolAfter: await carolRx.decrypt("video", after.slice(0)),
  forgedAfter: await forged.decrypt("video", after.slice(0)),
  stolen,
  daveBefore: await daveRx.decrypt("video", before.slice(0)),
  daveAfter: await daveRx.decrypt("video", after.slice(0)),
  daveThird: (await daveRx.decrypt("audio", third.slice(0))) !== null,
  carolThird: await carolRx.decrypt("audio", third.slice(0)),
  importWipes: await (async () => {
    const raw = keys.newMediaKey();
    await keys.importMediaKey(raw);
    return raw.every((b) => b === 0);
  })(),
};
""",
        )
    assert result == {
        "bobBefore": True,
        "carolBefore": True,
        "bobAfter": True,
        "carolAfter": None,
        "forgedAfter": None,
        "stolen": None,
        "daveBefore": None,
        "daveAfter": None,
        "daveThird": True,
        "carolThird": None,
        "importWipes": True,
    }


async def test_frames_fail_closed(live_server: LiveServer) -> None:
    async with chromium() as browser:
        page = await module_page(live_server, browser)
        result = await run(
            page,
            """
const raw = keys.newMediaKey();
const sender = new frame.FrameEncryptor();
const rx = new frame.FrameDecryptor();
sender.setKey(await frameKey(raw, 7));
rx.addKey(await frameKey(raw, 7));
const sealed = await sender.encrypt("video", vp8Key(200));
const view = new Uint8Array(sealed);
const flip = (index) => {
  const copy = new Uint8Array(sealed.slice(0));
  copy[index] ^= 0x04;
  return copy.buffer;
};
const outcome = {
  clearHeaderKept: bytes(view.slice(0, 10)).join() === bytes(vp8Key(200).slice(0, 10)).join(),
  bodyHidden: bytes(view.slice(10, 200)).join() !== bytes(vp8Key(200).slice(10)).join(),
  plain: await rx.decrypt("video", vp8Key(200)),
  plainDelta: await rx.decrypt("video", vp8Delta(200)),
  tooShort: await rx.decrypt("video", new Uint8Array([0x50, 1, 2]).buffer),
  empty: await rx.decrypt("audio", new ArrayBuffer(0)),
  tamperedHeader: await rx.decrypt("video", flip(5)),
  tamperedBody: await rx.decrypt("video", flip(40)),
  tamperedKid: await rx.decrypt("video", flip(view.length - 10)),
  wrongKind: await rx.decrypt("audio", sealed.slice(0)),
  first: (await rx.decrypt("video", sealed.slice(0))) !== null,
  replayed: await rx.decrypt("video", sealed.slice(0)),
};
// No key: the sender drops the frame instead of sending it in clear.
outcome.noKey = await new frame.FrameEncryptor().encrypt("video", vp8Key(50));
return outcome;
""",
        )
    assert result == {
        "clearHeaderKept": True,
        "bodyHidden": True,
        "plain": None,
        "plainDelta": None,
        "tooShort": None,
        "empty": None,
        "tamperedHeader": None,
        "tamperedBody": None,
        "tamperedKid": None,
        "wrongKind": None,
        "first": True,
        "replayed": None,
        "noKey": None,
    }


async def test_counters_are_never_reused_and_keys_never_go_back(live_server: LiveServer) -> None:
    async with chromium() as browser:
        page = await module_page(live_server, browser)
        result = await run(
            page,
            """
const trailer = (buffer) => {
  const v = new DataView(buffer, buffer.byteLength - frame.TRAILER_BYTES);
  return `${v.getUint32(0)}:${v.getUint32(4) * 2 ** 32 + v.getUint32(8)}`;
};
const sender = new frame.FrameEncryptor();
const k1 = await frameKey(keys.newMediaKey(), 1);
const k2 = await frameKey(keys.newMediaKey(), 2);
sender.setKey(k1);
// Audio and video frames in flight together share one counter.
const batch = await Promise.all(Array.from({ length: 300 }, (_, i) =>
  sender.encrypt(i % 3 ? "audio" : "video", i % 3 ? new Uint8Array(80).buffer : vp8Delta(500))));
sender.setKey(k2);
const underK2 = await sender.encrypt("audio", new Uint8Array(80).buffer);
sender.setKey(k1); // A late, older key must not come back (it would restart counter 0).
const stillK2 = await sender.encrypt("audio", new Uint8Array(80).buffer);
const seen = batch.map(trailer);

// Out of order within the window is fine; far behind or repeated is not.
const rx = new frame.FrameDecryptor();
rx.addKey(k1);
const order = [5, 3, 4, 299, 0];
const accepted = [];
for (const i of order) accepted.push((await rx.decrypt(i % 3 ? "audio" : "video",
                                                        batch[i].slice(0))) !== null);
// Only the two newest keys per sender are kept.
rx.addKey(k2);
rx.addKey(await frameKey(keys.newMediaKey(), 3));
return {
  unique: new Set(seen).size === seen.length,
  kid1: seen.every((t) => t.startsWith("1:")),
  underK2: trailer(underK2),
  stillK2: trailer(stillK2),
  accepted,
  kids: rx.kids,
  afterEviction: await rx.decrypt("audio", batch[1].slice(0)),
};
""",
        )
    assert result == {
        "unique": True,
        "kid1": True,
        "underK2": "2:0",
        "stillK2": "2:1",
        "accepted": [True, True, True, True, True],
        "kids": [2, 3],
        "afterEviction": None,
    }


async def test_safety_code_is_order_free_and_changes_with_any_key(
    live_server: LiveServer,
) -> None:
    async with chromium() as browser:
        page = await module_page(live_server, browser)
        result = await run(
            page,
            """
const [doctor, patient, mallory] = await Promise.all([person(), person(), person()]);
const d = doctor.id.publicKey, p = patient.id.publicKey, m = mallory.id.publicKey;
const doctorSide = await keys.safetyCode([d, p]);
const patientSide = await keys.safetyCode([p, d]);
// Mallory in the middle: each side holds her key instead of the other's.
const doctorFooled = await keys.safetyCode([d, m]);
const patientFooled = await keys.safetyCode([p, m]);
let ownKeyRefused = false;
try { await doctor.id.pairWith(d); } catch { ownKeyRefused = true; }
let badKeyRefused = false;
try { await doctor.id.pairWith(new Uint8Array(65)); } catch { badKeyRefused = true; }
return { doctorSide, patientSide, doctorFooled, patientFooled, ownKeyRefused, badKeyRefused };
""",
        )
    assert result["doctorSide"] == result["patientSide"]
    assert len({result["doctorSide"], result["doctorFooled"], result["patientFooled"]}) == 3
    assert result["ownKeyRefused"]
    assert result["badKeyRefused"]
