"""Every private attribute of aiortc, aioice and pylibsrtp the relay touches, in one place.

The RTP fast path takes over aiortc's media path (see `media.srtp_path` and
`media.rtp_hooks`), which no public API allows. Everything it needs from the
libraries' insides is read or replaced here, and nowhere else, so that an
upgrade has one module to review. `check_internals` verifies at start-up
(a `Relay` is built, a worker starts) that each of them still exists, and
fails with the name of the first missing one and the versions this module
was written for (pinned in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from pylibsrtp import Policy, Session

try:
    from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]
except ImportError:  # Reported by check_internals, with the versions it was written for.
    ffi = lib = None

# The tested versions; pyproject.toml pins the same series.
WRITTEN_FOR = {"aiortc": "1.16", "aioice": "0.13", "pylibsrtp": "1.0"}

_SENDER_EVENTS = (
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited",
)
_RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_RECEIVER_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
_RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_SENDER_ENCODER = "_RTCRtpSender__encoder"

# (owner, attribute): what the production relay uses.
RELAY_NEEDS: tuple[tuple[str, str], ...] = (
    ("RTCRtpTransceiver", "_codecs"),
    ("RTCRtpTransceiver", "_headerExtensions"),
    ("RTCRtpSender", "_ssrc"),
    ("RTCRtpSender", "_stream_id"),
    ("RTCRtpSender", "_run_rtp"),
    ("RTCRtpSender", "_run_rtcp"),
    ("RTCRtpSender", "_handle_rtcp_packet"),
    *(("RTCRtpSender", name) for name in _SENDER_EVENTS),
    ("RTCRtpReceiver", _RECEIVER_RTCP_SSRC),
    ("RTCRtpReceiver", _RECEIVER_REMOTE_STREAMS),
    ("RTCRtpReceiver", "_send_rtcp"),
    ("RTCRtpReceiver", "_send_rtcp_pli"),
    ("RTCRtpReceiver", "_send_rtcp_nack"),
    ("RTCDtlsTransport", "_rx_srtp"),
    ("RTCDtlsTransport", "_tx_srtp"),
    ("RTCDtlsTransport", "_handle_rtcp_data"),
    ("RTCIceTransport", "_connection"),
    ("Connection", "_nominated"),
    ("Connection", "_protocols"),
    ("Connection", "data_received"),
    ("StunProtocol", "datagram_received"),
    ("StunProtocol", "send_data"),
    ("Session", "_srtp"),
    ("Session", "_cdata"),
    ("Session", "_buffer"),
    ("pylibsrtp._binding", "ffi"),
    ("pylibsrtp._binding", "lib"),
    ("pylibsrtp._binding.lib", "srtp_protect"),
    ("pylibsrtp._binding.lib", "srtp_unprotect"),
)
# What only the benchmark's baseline forwarding modes (bench/) use.
BASELINE_NEEDS: tuple[tuple[str, str], ...] = (
    ("RTCRtpReceiver", _RECEIVER_DECODER_QUEUE),
    ("RTCRtpSender", _SENDER_ENCODER),
    ("RTCRtpSender", "_send_keyframe"),
    ("Vp8Encoder", "_packetize"),
)


class IncompatibleMediaStack(RuntimeError):
    """An installed aiortc, aioice or pylibsrtp lacks an internal the relay relies on."""


def installed_versions() -> dict[str, str]:
    found = {}
    for package in WRITTEN_FOR:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _probe() -> dict[str, Any]:
    """Real, never started objects: instance attributes exist only on instances."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # aiortc's senders take the current loop: lend them one (a relay node checks
        # before its loop runs).
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(_probe_in_loop())
        finally:
            loop.close()
    return _build_probe()


async def _probe_in_loop() -> dict[str, Any]:
    return _build_probe()


def _build_probe() -> dict[str, Any]:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video")
    dtls = transceiver.sender.transport
    ice = dtls.transport
    session = Session(policy=Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_INBOUND))
    owners: dict[str, Any] = {
        "RTCRtpTransceiver": transceiver,
        "RTCRtpSender": transceiver.sender,
        "RTCRtpReceiver": transceiver.receiver,
        "RTCDtlsTransport": dtls,
        "RTCIceTransport": ice,
        "Connection": getattr(ice, "_connection", Connection),
        "StunProtocol": StunProtocol,
        "Session": session,
        "Vp8Encoder": Vp8Encoder,
        "pylibsrtp._binding": {"ffi": ffi, "lib": lib},
        "pylibsrtp._binding.lib": lib,
    }
    return owners


def missing_internals(needs: Iterable[tuple[str, str]]) -> list[str]:
    """`Owner.attribute` for each need the installed libraries do not have."""
    owners = _probe()
    missing = []
    for owner, name in needs:
        target = owners[owner]
        present = (
            target.get(name) is not None if isinstance(target, dict) else hasattr(target, name)
        )
        if not present:
            missing.append(f"{owner}.{name}")
    return missing


def check_internals(*, baselines: bool = False) -> None:
    """Raise `IncompatibleMediaStack` naming what is missing; cheap after the first success."""
    _check(baselines)


@functools.cache
def _check(baselines: bool) -> None:
    needs = RELAY_NEEDS + (BASELINE_NEEDS if baselines else ())
    missing = missing_internals(needs)
    if missing:
        written = ", ".join(f"{p} {v}.*" for p, v in WRITTEN_FOR.items())
        installed = ", ".join(f"{p} {v}" for p, v in installed_versions().items())
        raise IncompatibleMediaStack(
            f"the media relay needs {', '.join(missing)}, which the installed libraries "
            f"({installed}) do not have; media/aiortc_internals.py was written for {written}"
        )


# ------------------------------------------------------------- negotiation


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[Any]:
    """The codecs of a transceiver once its description is applied."""
    return list(transceiver._codecs)


def header_extension_ids(transceivers: Iterable[RTCRtpTransceiver]) -> dict[str, int]:
    """Negotiated header extensions, uri -> id (one id space with BUNDLE)."""
    return {ext.uri: ext.id for t in transceivers for ext in t._headerExtensions}


def sender_ssrc(sender: RTCRtpSender) -> int:
    return int(sender._ssrc)


def share_media_stream(senders: list[RTCRtpSender]) -> None:
    """Put every sender in the first one's stream (browsers lip-sync within a stream)."""
    for sender in senders[1:]:
        sender._stream_id = senders[0]._stream_id


# ------------------------------------------------------------- ICE and sockets


def ice_connection(dtls: RTCDtlsTransport) -> Connection:
    """The aioice connection under a DTLS transport."""
    ice: RTCIceTransport = dtls.transport
    return ice._connection


def gathered_protocols(dtls: RTCDtlsTransport) -> list[Any]:
    """The socket protocols an ICE connection gathered."""
    return list(ice_connection(dtls)._protocols)


def nominated_pair(connection: Connection) -> Any:
    """The nominated candidate pair of RTP's component, or None before nomination."""
    return connection._nominated.get(1)


def is_direct(protocol: Any) -> bool:
    """A host or server-reflexive socket (not a TURN allocation)."""
    return isinstance(protocol, StunProtocol)


DatagramHandler = Callable[[bytes, int], None]
SocketHandler = Callable[[bytes, Any], None]


def intercept_datagrams(connection: Connection, handler: DatagramHandler) -> DatagramHandler:
    """Route the connection's incoming datagrams to `handler`; returns aioice's own."""
    original: DatagramHandler = connection.data_received
    connection.data_received = handler  # type: ignore[method-assign,assignment]
    return original


def release_datagrams(connection: Connection, handler: DatagramHandler) -> None:
    if connection.data_received == handler:
        del connection.data_received


def intercept_socket(protocol: StunProtocol, handler: SocketHandler) -> SocketHandler:
    """Take a socket's datagrams before aioice parses them; returns aioice's own."""
    original: SocketHandler = protocol.datagram_received
    protocol.datagram_received = handler  # type: ignore[method-assign,assignment]
    return original


def socket_component(protocol: StunProtocol) -> int | None:
    """The ICE component a socket's datagrams belong to (what aioice passes up).

    None when aioice no longer keeps it there: callers then leave every
    datagram to aioice (an instance attribute, so the start-up check cannot see it).
    """
    candidate = getattr(protocol, "local_candidate", None)
    component = getattr(candidate, "component", None)
    return component if isinstance(component, int) else None


def socket_intercepted(protocol: StunProtocol) -> bool:
    return "datagram_received" in vars(protocol)


def release_socket(protocol: StunProtocol) -> None:
    if "datagram_received" in vars(protocol):
        del protocol.datagram_received


# ------------------------------------------------------------- SRTP sessions


def receive_session(dtls: RTCDtlsTransport) -> Session | None:
    """The inbound SRTP session, once DTLS has keyed it."""
    session: Session | None = dtls._rx_srtp
    return session


def send_session(dtls: RTCDtlsTransport) -> Session | None:
    session: Session | None = dtls._tx_srtp
    return session


class SrtpBuffer:
    """A pylibsrtp session's own packet buffer, protected or unprotected in place.

    pylibsrtp's public calls allocate a bytes object per packet; a relay
    works in the session's buffer instead.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._srtp = session._srtp[0]
        self.cdata: Any = session._cdata
        self.packed: Any = session._buffer
        self.view = memoryview(session._buffer)
        self._length = ffi.new("int *")

    def load(self, src: Any, length: int) -> None:
        """Copy `length` bytes from `src` (bytes or a buffer) into the session buffer."""
        ffi.memmove(self.cdata, src, length)

    def unprotect(self, length: int) -> int:
        """Decrypt the `length` bytes in the buffer; the clear length, or -1 if refused."""
        self._length[0] = length
        if lib.srtp_unprotect(self._srtp, self.cdata, self._length) != 0:
            return -1
        return int(self._length[0])

    def protect(self, length: int) -> int:
        """Encrypt the `length` clear bytes in the buffer; the protected length, or -1."""
        self._length[0] = length
        if lib.srtp_protect(self._srtp, self.cdata, self._length) != 0:
            return -1
        return int(self._length[0])

    def protect_rtcp(self, packet: bytes) -> bytes:
        return bytes(self._session.protect_rtcp(packet))


# ------------------------------------------------------------- RTCP and senders

RtcpDataHandler = Callable[[bytes], Awaitable[None]]


def intercept_rtcp(dtls: RTCDtlsTransport, handler: RtcpDataHandler) -> RtcpDataHandler:
    """Route decrypted incoming RTCP to `handler`; returns aiortc's own handler."""
    original: RtcpDataHandler = dtls._handle_rtcp_data
    dtls._handle_rtcp_data = handler  # type: ignore[method-assign,assignment]
    return original


def take_over_sender(sender: RTCRtpSender, handle_rtcp: Callable[[Any], Awaitable[None]]) -> None:
    """Stop a sender's own RTP and RTCP loops and route its incoming RTCP to `handle_rtcp`.

    Must run before the sender starts (aiortc starts it once DTLS is up).
    The loops would encode, and send sender reports of a stream never sent.
    """
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

    sender._run_rtp = run_rtp  # type: ignore[method-assign]
    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]
    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign,assignment]


def receiver_rtcp_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The SSRC a receiver signs its feedback with (None before it received anything)."""
    ssrc: int | None = getattr(receiver, _RECEIVER_RTCP_SSRC)
    return ssrc


class _Unreported(dict[int, Any]):
    """A receiver's per-stream statistics, kept but never listed, so never reported."""

    def items(self) -> Any:
        return iter(())


def silence_receiver_reports(receiver: RTCRtpReceiver) -> None:
    """Stop aiortc's own receiver reports for a fast-path publication.

    The few packets that reach aiortc (the first, before the fast path takes over)
    would have it report them forever, frozen, alongside the relay's own reports
    (`media.reception`): the publisher's loss figure would jump between the two.
    """
    streams = getattr(receiver, _RECEIVER_REMOTE_STREAMS)
    if not isinstance(streams, _Unreported):
        setattr(receiver, _RECEIVER_REMOTE_STREAMS, _Unreported(streams))


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> Awaitable[None]:
    result: Awaitable[None] = receiver._send_rtcp_pli(media_ssrc)
    return result


def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> Awaitable[None]:
    result: Awaitable[None] = receiver._send_rtcp_nack(media_ssrc, lost)
    return result


def send_rtcp(receiver: RTCRtpReceiver, packet: Any) -> Awaitable[None]:
    result: Awaitable[None] = receiver._send_rtcp(packet)
    return result


# ------------------------------------------------------------- benchmark baselines only


def replace_decoder_queue(receiver: RTCRtpReceiver, queue: Any) -> Any:
    """Swap the queue a receiver hands reassembled frames to its decoder thread on."""
    previous = getattr(receiver, _RECEIVER_DECODER_QUEUE, None)
    setattr(receiver, _RECEIVER_DECODER_QUEUE, queue)
    return previous


def replace_encoder(sender: RTCRtpSender, encoder: Any) -> None:
    setattr(sender, _SENDER_ENCODER, encoder)


def on_keyframe_request(sender: RTCRtpSender, handler: Callable[[], None]) -> None:
    """What a sender does on PLI/FIR from its subscriber."""
    sender._send_keyframe = handler  # type: ignore[method-assign]


def vp8_packetize(frame: bytes, picture_id: int) -> list[bytes]:
    payloads: list[bytes] = Vp8Encoder._packetize(frame, picture_id)
    return payloads
