"""Where the RTP fast path plugs into aiortc objects.

The relay keeps aiortc for what it does well (ICE, DTLS, SDP, RTCP parsing)
and takes over the media path:

- on a publish connection, `PublisherTap` receives decrypted RTP before
  aiortc parses it, and sender reports for lip-sync;
- on a subscription, `take_over_sender` (in `media.aiortc_internals`) stops
  the sender's own RTP and RTCP loops and routes the subscriber's RTCP to
  the down track;
- `ReceiverUpstream` sends the relay's feedback (PLI, NACK, REMB) to a
  publisher through its aiortc receiver.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    pack_remb_fci,
)

from media import aiortc_internals as internals
from media.aiortc_internals import take_over_sender
from media.malformed import MalformedCounter
from media.reception import ReceptionReport
from media.rtp_forwarding import PublicationRouter
from media.srtp_path import SrtpIngress

__all__ = ["PublisherTap", "ReceiverUpstream", "take_over_sender"]

logger = logging.getLogger(__name__)


class PublisherTap:
    """Feeds a publish connection's RTP and sender reports to a router."""

    def __init__(self, dtls: Any, router: PublicationRouter) -> None:
        self._router = router
        self.ingress = SrtpIngress(dtls, router.on_rtp)
        self.malformed = MalformedCounter(logger, "publisher rtcp")
        self._original_rtcp = internals.intercept_rtcp(dtls, self._handle_rtcp_data)

    @property
    def malformed_packets(self) -> int:
        return self.malformed.count + self.ingress.malformed_packets

    async def _handle_rtcp_data(self, data: bytes) -> None:
        try:
            packets = RtcpPacket.parse(data)
        except Exception:
            # aiortc's parser raises ValueError, struct.error or IndexError on garbage.
            self.malformed.drop()
            return
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                self._router.sender_report(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)
        await self._original_rtcp(data)

    def close(self) -> None:
        self.ingress.close()


class ReceiverUpstream:
    """Sends the relay's feedback to a publisher through its aiortc receiver."""

    def __init__(self, receiver: Any) -> None:
        self._receiver = receiver

    def pli(self, ssrc: int) -> None:
        self._spawn(internals.send_pli(self._receiver, ssrc))

    def nack(self, ssrc: int, lost: list[int]) -> None:
        self._spawn(internals.send_nack(self._receiver, ssrc, sorted(lost)))

    def receiver_report(self, ssrc: int, report: ReceptionReport) -> None:
        rtcp_ssrc = internals.receiver_rtcp_ssrc(self._receiver)
        if rtcp_ssrc is None:
            return
        info = RtcpReceiverInfo(
            ssrc=ssrc,
            fraction_lost=report.fraction_lost,
            packets_lost=report.packets_lost,
            highest_sequence=report.highest_sequence,
            jitter=0,
            lsr=report.lsr,
            dlsr=report.dlsr,
        )
        self._spawn(
            internals.send_rtcp(self._receiver, RtcpRrPacket(ssrc=rtcp_ssrc, reports=[info]))
        )

    def remb(self, bitrate: int, ssrcs: list[int]) -> None:
        rtcp_ssrc = internals.receiver_rtcp_ssrc(self._receiver)
        if rtcp_ssrc is None:
            return
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
        )
        self._spawn(internals.send_rtcp(self._receiver, packet))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("relay feedback to publisher failed: %r", task.exception())
