"""Where the RTP fast path plugs into aiortc objects.

The relay keeps aiortc for what it does well (ICE, DTLS, SDP, RTCP parsing)
and takes over the media path:

- on a publish connection, `PublisherTap` receives decrypted RTP before
  aiortc parses it, and sender reports for lip-sync;
- on a subscription, `take_over_sender` stops the sender's own RTP and RTCP
  loops (which would encode, and send sender reports of a stream it never
  sent) and routes the subscriber's RTCP to a handler (the down track's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.rtp import RTCP_PSFB_APP, RtcpPacket, RtcpPsfbPacket, RtcpSrPacket, pack_remb_fci

from media.rtp_forwarding import PublicationRouter
from media.srtp_path import SrtpIngress, check_internals

logger = logging.getLogger(__name__)

_SENDER_EVENTS = (
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited",
)
_RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"


class PublisherTap:
    """Feeds a publish connection's RTP and sender reports to a router."""

    def __init__(self, dtls: Any, router: PublicationRouter) -> None:
        check_internals(dtls)
        self._dtls = dtls
        self._router = router
        self.ingress = SrtpIngress(dtls, router.on_rtp)
        self._original_rtcp = dtls._handle_rtcp_data
        dtls._handle_rtcp_data = self._handle_rtcp_data

    async def _handle_rtcp_data(self, data: bytes) -> None:
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
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
        if not hasattr(receiver, _RECEIVER_RTCP_SSRC):
            raise RuntimeError("this aiortc version has no receiver RTCP SSRC")
        self._receiver = receiver

    def pli(self, ssrc: int) -> None:
        self._spawn(self._receiver._send_rtcp_pli(ssrc))

    def nack(self, ssrc: int, lost: list[int]) -> None:
        self._spawn(self._receiver._send_rtcp_nack(ssrc, sorted(lost)))

    def remb(self, bitrate: int, ssrcs: list[int]) -> None:
        rtcp_ssrc = getattr(self._receiver, _RECEIVER_RTCP_SSRC)
        if rtcp_ssrc is None:
            return
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
        )
        self._spawn(self._receiver._send_rtcp(packet))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_log_failure)


def take_over_sender(sender: Any, handle_rtcp: Callable[[Any], Awaitable[None]]) -> None:
    """Must run before the sender starts (aiortc starts it once DTLS is up)."""
    for name in (*_SENDER_EVENTS, "_run_rtp", "_run_rtcp", "_handle_rtcp_packet"):
        if not hasattr(sender, name):
            raise RuntimeError(f"this aiortc version has no RTCRtpSender.{name}")
    rtp_started, rtp_exited, rtcp_started, rtcp_exited = (
        getattr(sender, name) for name in _SENDER_EVENTS
    )

    async def idle(started: asyncio.Event, exited: asyncio.Event) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        finally:
            exited.set()

    async def run_rtp(codec: Any) -> None:
        await idle(rtp_started, rtp_exited)

    async def run_rtcp() -> None:
        await idle(rtcp_started, rtcp_exited)

    sender._run_rtp = run_rtp
    sender._run_rtcp = run_rtcp
    sender._handle_rtcp_packet = handle_rtcp


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("relay feedback to publisher failed: %r", task.exception())
