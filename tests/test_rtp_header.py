"""In-place RTP header rewriting, on hand-built packets."""

from __future__ import annotations

import struct

from media.rtp_header import (
    extension_id_map,
    is_vp8_keyframe_start,
    payload_offset,
    relay_extension_ids,
    rewrite_extensions,
    unwrap_rtx,
    write_mid,
)

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def packet(extensions: bytes, payload: bytes, pt: int = 96, seq: int = 7) -> bytearray:
    padded = extensions + bytes(-len(extensions) % 4)
    header = struct.pack("!BBHII", 0x90, pt, seq, 1234, 0xABCD)
    ext = struct.pack("!HH", 0xBEDE, len(padded) // 4) + padded
    return bytearray(header + ext + payload)


def test_extension_ids_are_renumbered_and_unknown_ones_become_padding() -> None:
    relay = relay_extension_ids()
    # The publisher (a browser) numbered them its own way, plus transport-cc.
    id_map = extension_id_map({MID: 4, ABS_SEND_TIME: 2, TWCC: 3})
    mid = bytes([(4 << 4) | 0]) + b"0"
    abs_time = bytes([(2 << 4) | 2]) + b"\x01\x02\x03"
    twcc = bytes([(3 << 4) | 1]) + b"\x00\x09"
    buf = packet(mid + twcc + abs_time, b"payload")
    length = len(buf)

    mid_at = rewrite_extensions(buf, length, id_map)

    ext = buf[16 : 16 + 12]
    assert ext[0] == (relay[MID] << 4)
    assert ext[1:2] == b"0"
    assert ext[2:5] == b"\x00\x00\x00"  # transport-cc: not negotiated with subscribers
    assert ext[5] == (relay[ABS_SEND_TIME] << 4) | 2
    assert ext[6:9] == b"\x01\x02\x03"
    assert mid_at == 16
    assert buf[payload_offset(buf, length) :] == b"payload"

    write_mid(buf, mid_at, b"1")
    assert buf[17:18] == b"1"
    write_mid(buf, mid_at, b"10")  # cannot fit: the element goes, never a wrong mid
    assert buf[16:18] == b"\x00\x00"


def test_vp8_keyframe_start_reads_descriptor_and_first_frame_byte() -> None:
    # X=1, S=1, PID=0; I=1 with a 15-bit picture id; then the VP8 frame header.
    key = bytes([0x90, 0x80, 0x81, 0x23, 0x10, 0xAA])
    delta = bytes([0x90, 0x80, 0x81, 0x23, 0x11, 0xAA])
    middle = bytes([0x80, 0x80, 0x81, 0x23, 0xAA, 0xAA])  # S=0: not a frame start
    short = bytes([0x10, 0x10])
    for payload, expected in ((key, True), (delta, False), (middle, False), (short, True)):
        buf = packet(b"", payload)
        assert is_vp8_keyframe_start(buf, payload_offset(buf, len(buf)), len(buf)) is expected


def test_rtx_packet_is_unwrapped_to_the_original() -> None:
    rtx = bytes(packet(b"", struct.pack("!H", 4242) + b"frame", pt=97, seq=9))
    original = unwrap_rtx(rtx, 96, 0x1111)
    assert original is not None
    _v_p_x_cc, m_pt, seq, ts, ssrc = struct.unpack_from("!BBHII", original)
    assert (m_pt & 0x7F, seq, ts, ssrc) == (96, 4242, 1234, 0x1111)
    assert original[payload_offset(original, len(original)) :] == b"frame"
