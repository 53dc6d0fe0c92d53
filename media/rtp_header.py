"""In-place reading and rewriting of RTP headers (RFC 3550, RFC 8285, RFC 7741).

The forwarding path works on raw packet buffers, never on parsed packet
objects: these functions read or patch a writable buffer where it lies and
return plain ints. `bytes` input is accepted wherever nothing is written.
"""

from __future__ import annotations

import struct

from aiortc.codecs import HEADER_EXTENSIONS

RTP_HEADER_LENGTH = 12
# What `rewrite_extensions` returns for a header whose extensions run past the packet.
MALFORMED = -2
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

_SEQ_TS_SSRC = struct.Struct("!HII")
_PROFILE_LENGTH = struct.Struct("!HH")
_U16 = struct.Struct("!H")

Buffer = bytearray | memoryview | bytes


def relay_extension_ids() -> dict[str, int]:
    """The ids the relay offers to subscribers: aiortc's fixed table, shared by both kinds."""
    return {ext.uri: ext.id for kind in ("audio", "video") for ext in HEADER_EXTENSIONS[kind]}


_MID_ID = relay_extension_ids()[MID_URI]
# Maps the relay's own ids to themselves: finds the mid in an already rewritten packet.
RELAY_IDENTITY = bytes(i if i in relay_extension_ids().values() else 0 for i in range(256))


def extension_id_map(publisher_ids: dict[str, int]) -> bytes:
    """A 256-byte table: publisher extension id -> subscriber id, 0 where none."""
    relay_ids = relay_extension_ids()
    table = bytearray(256)
    for uri, publisher_id in publisher_ids.items():
        if uri in relay_ids and 0 < publisher_id < 256:
            table[publisher_id] = relay_ids[uri]
    return bytes(table)


def is_rtcp(data: Buffer) -> bool:
    # RFC 5761 4: payload types 64-95 with the marker bit are RTCP 192-223.
    return len(data) > 1 and 192 <= data[1] <= 223


def sequence_number(data: Buffer) -> int:
    return int(_U16.unpack_from(data, 2)[0])


def write_header(buf: bytearray | memoryview, seq: int, timestamp: int, ssrc: int) -> None:
    _SEQ_TS_SSRC.pack_into(buf, 2, seq, timestamp, ssrc)


def payload_offset(data: Buffer, length: int) -> int:
    """Where the payload starts; -1 when the header runs past `length`."""
    if length < RTP_HEADER_LENGTH:
        return -1
    pos = RTP_HEADER_LENGTH + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if pos + 4 > length:
            return -1
        pos += 4 + 4 * _PROFILE_LENGTH.unpack_from(data, pos)[1]
    return pos if pos <= length else -1


def rewrite_extensions(buf: bytearray | memoryview, length: int, id_map: bytes) -> int:
    """Renumber header extensions in place with `id_map`; drop those mapped to 0.

    A dropped element becomes padding (zero bytes, RFC 8285 4.2), so the
    packet keeps its length and nothing is copied. Returns the offset of the
    mid element's header byte (to be overwritten per subscriber), -1 when
    there is none, or `MALFORMED` when the header or an element runs past
    the extension block or the packet (the packet may then be half rewritten).
    """
    if not buf[0] & 0x10:
        return -1
    start = RTP_HEADER_LENGTH + 4 * (buf[0] & 0x0F)
    if start + 4 > length:
        return MALFORMED
    profile, words = _PROFILE_LENGTH.unpack_from(buf, start)
    pos = start + 4
    end = pos + 4 * words
    if end > length:
        return MALFORMED
    mid_at = -1
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            head = buf[pos]
            if head == 0:
                pos += 1
                continue
            ext_id = head >> 4
            if ext_id == 15:
                break
            size = (head & 0x0F) + 1
            if pos + 1 + size > end:
                return MALFORMED
            new_id = id_map[ext_id]
            if new_id:
                buf[pos] = (new_id << 4) | (head & 0x0F)
                if new_id == _MID_ID:
                    mid_at = pos
            else:
                buf[pos : pos + 1 + size] = bytes(1 + size)
            pos += 1 + size
    elif (profile & 0xFFF0) == TWO_BYTE_PROFILE:
        while pos + 1 < end:
            ext_id = buf[pos]
            if ext_id == 0:
                pos += 1
                continue
            size = buf[pos + 1]
            if pos + 2 + size > end:
                return MALFORMED
            new_id = id_map[ext_id]
            if new_id:
                buf[pos] = new_id
            else:
                buf[pos : pos + 2 + size] = bytes(2 + size)
            pos += 2 + size
    return mid_at


def write_mid(buf: bytearray | memoryview, mid_at: int, mid: bytes) -> None:
    """Put a subscriber's mid into the one-byte mid element found by `rewrite_extensions`.

    A browser routes by mid first, so a publisher's mid must never reach a
    subscriber; when the lengths differ the element becomes padding.
    """
    size = (buf[mid_at] & 0x0F) + 1
    if size == len(mid):
        buf[mid_at + 1 : mid_at + 1 + size] = mid
    else:
        buf[mid_at : mid_at + 1 + size] = bytes(1 + size)


def is_vp8_keyframe_start(data: Buffer, offset: int, length: int) -> bool:
    """True for the first packet of a VP8 key frame (RFC 7741 4.2 and 4.3).

    Reads only the payload descriptor and the first byte of the VP8 frame,
    which end-to-end encryption leaves in clear.
    """
    if offset < 0 or offset >= length:
        return False
    first = data[offset]
    # S=1 and partition index 0: the packet starts a frame.
    if (first & 0x1F) != 0x10:
        return False
    pos = offset + 1
    if first & 0x80:
        if pos >= length:
            return False
        ext = data[pos]
        pos += 1
        if ext & 0x80:
            if pos >= length:
                return False
            pos += 2 if data[pos] & 0x80 else 1
        if ext & 0x40:
            pos += 1
        if ext & 0x30:
            pos += 1
    return pos < length and data[pos] & 0x01 == 0


def unwrap_rtx(data: bytes, payload_type: int, ssrc: int) -> bytes | None:
    """The original packet inside an RTX retransmission (RFC 4588 4), or None if malformed."""
    length = len(data)
    offset = payload_offset(data, length)
    if offset < 0 or offset + 2 > length or data[0] & 0x20:
        return None
    original_seq = _U16.unpack_from(data, offset)[0]
    head = bytearray(data[:offset])
    head[1] = (head[1] & 0x80) | payload_type
    _U16.pack_into(head, 2, original_seq)
    struct.pack_into("!I", head, 8, ssrc)
    return bytes(head) + data[offset + 2 :]
