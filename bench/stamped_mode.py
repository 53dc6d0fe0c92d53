"""The benchmark's relay latency: from the sender's stamp to the last copy sent.

The production relay times a packet from the moment the socket hands it up
(`PublicationRouter.delay`); time spent queued in the kernel before that is
invisible to it. In the benchmark, sender and relay share one clock, so the
relay reads the abs-send-time stamp the load generator writes into every
packet (the same one the client-to-client figure uses) and the figure
includes the sender's stack and both kernels' queues.
"""

from __future__ import annotations

import time

from media.rtp_forwarding import PublicationRouter
from media.rtp_header import relay_extension_ids
from media.rtp_mode import RtpForwarding

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
# After `rewrite_extensions` the packet carries the relay's own ids.
_ABS_ID = relay_extension_ids()[ABS_SEND_TIME_URI]
_WRAP = 1 << 24
_UNITS = 262144  # abs-send-time: 6.18 fixed-point seconds


def abs_send_time(now: float) -> int:
    return int(now * _UNITS) & 0xFFFFFF


def read_abs_send_time(view: memoryview, length: int) -> int | None:
    """The 24-bit abs-send-time of an RTP packet with one-byte extensions, if present."""
    if not view[0] & 0x10:
        return None
    pos = 16 + 4 * (view[0] & 0x0F)
    if pos > length:
        return None
    end = min(pos + 4 * ((view[pos - 2] << 8) | view[pos - 1]), length)
    while pos < end:
        head = view[pos]
        if head == 0:
            pos += 1
            continue
        if head >> 4 == _ABS_ID and pos + 4 <= end:
            return (view[pos + 1] << 16) | (view[pos + 2] << 8) | view[pos + 3]
        pos += 2 + (head & 0x0F)
    return None


class StampedRouter(PublicationRouter):
    def delay(self, view: memoryview, length: int, now: float) -> float | None:
        sent = read_abs_send_time(view, length)
        if sent is None:
            return None
        return ((abs_send_time(time.time()) - sent) % _WRAP) / _UNITS


class StampedRtpForwarding(RtpForwarding):
    """The relay's own RTP mode, timed from the sender's stamp."""

    router_factory = StampedRouter
