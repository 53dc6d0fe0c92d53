"""The shortest way in and out of an aiortc connection for forwarded RTP.

aiortc reads every datagram through aioice's queue, a coroutine per layer and
an `RtpPacket` object, and sends through as many awaits. A relay only needs
SRTP unprotect, a header rewrite and SRTP protect, so:

- `SrtpIngress` takes SRTP datagrams from the ICE connection as they come
  off the socket (`Connection.data_received`) and unprotects them with
  libsrtp straight into the session's own buffer; everything else (STUN,
  DTLS, SRTCP) still goes the usual way;
- `SrtpEgress` protects a packet in the subscriber session's buffer and
  hands it to the nominated pair's datagram transport: no await, no copy
  beyond the one the kernel needs.

Both reach into pylibsrtp, aiortc and aioice through `media.aiortc_internals`,
which checks at start-up that what they need is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from media import aiortc_internals as internals
from media.malformed import MalformedCounter

logger = logging.getLogger(__name__)

# Room for ~0.25 s of a busy worker's input: a relay descheduled for a few
# milliseconds must not lose packets in the kernel (capped by net.core.rmem_max).
RECEIVE_BUFFER = 4 * 1024 * 1024
# libsrtp appends up to 16 bytes of authentication tag (SRTP_MAX_TRAILER_LEN).
MAX_PROTECTED_INPUT = 1500 - 16
MAX_DATAGRAM = 1500
# The fixed RTP header; an SRTP packet is at least that (RTCP, 8 bytes, is not taken here).
MIN_RTP_LENGTH = 12

PacketSink = Callable[[memoryview, int, float], None]


def is_srtp(data: bytes) -> bool:
    """For the fast path: SRTP that fits the session buffer (at least 2 bytes long).

    RFC 7983: first byte 128-191 is RTP or RTCP; RTCP (RFC 5761: PT 192-223)
    keeps aiortc's path, and so does anything longer than a datagram we send.
    """
    return 128 <= data[0] <= 191 and not 192 <= data[1] <= 223 and len(data) <= MAX_DATAGRAM


def enlarge_receive_buffer(protocol: Any) -> int:
    """Best effort; returns the size the kernel granted (0 if unknown)."""
    transport = getattr(protocol, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return 0
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def enlarge_receive_buffers(pc: Any) -> None:
    """For every socket a peer connection gathered (all relay modes, for a fair comparison)."""
    for transceiver in pc.getTransceivers():
        for protocol in internals.gathered_protocols(transceiver.receiver.transport):
            enlarge_receive_buffer(protocol)


def bypass_stun_parse(
    connection: Any, protocol: Any, fast: Callable[[bytes, Any], None] | None = None
) -> bool:
    """Hand a socket's non-STUN datagrams straight to its ICE connection.

    RFC 7983: only a first byte of 0-3 can be STUN. aioice tries to parse every
    datagram as STUN first, an exception each for SRTCP and DTLS: a relay
    receives a steady stream of subscribers' feedback. `fast(data, addr)`, if
    given, takes SRTP first. Returns False (nothing changed) when aioice no
    longer keeps what this needs.
    """
    component = internals.socket_component(protocol)
    if component is None:
        return False
    if internals.socket_intercepted(protocol):
        return True  # Audio and video of one bundled connection share the socket.
    to_connection = connection.data_received
    stun_first: Callable[[bytes, Any], None]

    def datagram_received(data: bytes, addr: Any) -> None:
        if fast is not None and len(data) >= 2 and is_srtp(data):
            fast(data, addr)
        elif data and data[0] > 3:
            to_connection(data, component)
        else:
            stun_first(data, addr)

    stun_first = internals.intercept_socket(protocol, datagram_received)
    return True


class SrtpIngress:
    """Feeds decrypted RTP from one DTLS transport to `sink(buffer, length)`.

    `buffer` is only valid during the call: it is the session's scratch area.
    Datagrams too short to be anything are dropped and counted
    (`malformed_packets`); those libsrtp refuses are counted in `rejected`.
    """

    def __init__(self, dtls: Any, sink: PacketSink) -> None:
        self._dtls = dtls
        self._sink = sink
        self._connection = internals.ice_connection(dtls)
        self._srtp: internals.SrtpBuffer | None = None
        self._protocol: Any = None
        self.receive_buffer = 0
        self.received = 0
        self.rejected = 0
        self.malformed = MalformedCounter(logger, "srtp ingress")
        self._fallback = internals.intercept_datagrams(self._connection, self._data_received)

    @property
    def malformed_packets(self) -> int:
        return self.malformed.count

    def _bind(self) -> bool:
        session = internals.receive_session(self._dtls)
        if session is None:
            return False
        self._srtp = internals.SrtpBuffer(session)
        self._take_socket()
        return True

    def _take_socket(self) -> None:
        # Straight from the socket of the nominated pair: skips aioice's attempt
        # to parse every datagram as STUN (an exception per media packet).
        pair = internals.nominated_pair(self._connection)
        if pair is None or not internals.is_direct(pair.protocol):
            return
        protocol = pair.protocol

        def srtp_received(data: bytes, addr: Any) -> None:
            self._forward(data)

        # SRTP straight to the session; SRTCP and DTLS to the connection (our hook
        # there included), past aioice's STUN parse; STUN to aioice.
        if not bypass_stun_parse(self._connection, protocol, srtp_received):
            return
        self._protocol = protocol
        self.receive_buffer = enlarge_receive_buffer(protocol)

    def _data_received(self, data: bytes, component: int) -> None:
        if len(data) < 2:
            # Shorter than any STUN, DTLS, SRTP or SRTCP packet: nobody can use it.
            self.malformed.drop()
            return
        if not is_srtp(data):
            self._fallback(data, component)
            return
        if self._srtp is None and not self._bind():
            self._fallback(data, component)
            return
        self._forward(data)

    def _forward(self, data: bytes) -> None:
        now = time.monotonic()
        length = len(data)
        srtp = self._srtp
        if srtp is None or length < MIN_RTP_LENGTH:
            self.malformed.drop()
            return
        srtp.load(data, length)
        clear = srtp.unprotect(length)
        if clear < 0:
            self.rejected += 1
            return
        self.received += 1
        self._sink(srtp.view, clear, now)

    def close(self) -> None:
        internals.release_datagrams(self._connection, self._data_received)
        if self._protocol is not None:
            internals.release_socket(self._protocol)
        self._srtp = None


class SrtpEgress:
    """Protects and sends RTP to one subscriber connection.

    Callers write the clear packet into `buffer` (once `ready()` is true),
    then call `send(length)`.
    """

    def __init__(self, dtls_of: Callable[[], Any]) -> None:
        self._dtls_of = dtls_of
        self.buffer: memoryview | None = None
        self._srtp: internals.SrtpBuffer | None = None
        self._sendto: Callable[[Any, Any], None] | None = None
        self._addr: Any = None
        self._slow_send: Callable[[bytes, Any], Any] | None = None
        self._protocol: Any = None
        # The datagram transport behind `_sendto`: asyncio logs a warning for every
        # send to a closed one, so it is checked before each send.
        self._transport: Any = None
        self._pending: set[asyncio.Future[Any]] = set()
        # Datagrams handed to the kernel (or to the TURN client), not attempts.
        self.sent = 0
        self.closed = False

    def ready(self) -> bool:
        if self.buffer is not None:
            return True
        if self.closed:
            return False
        dtls = self._dtls_of()
        if dtls is None or dtls.state != "connected":
            return False
        session = internals.send_session(dtls)
        if session is None:
            return False
        pair = internals.nominated_pair(internals.ice_connection(dtls))
        if pair is None:
            return False
        if internals.is_direct(pair.protocol) and pair.protocol.transport is not None:
            transport = pair.protocol.transport
            self.attach(session, transport.sendto, pair.remote_addr, transport)
            # The subscriber's feedback (SRTCP) comes back on this socket.
            if bypass_stun_parse(internals.ice_connection(dtls), pair.protocol):
                self._protocol = pair.protocol
        else:
            # A TURN-relayed pair wraps data itself; rare for a relay, kept correct.
            self._slow_send = pair.protocol.send_data
            self.attach(session, None, pair.remote_addr)
        return True

    def attach(
        self,
        session: Any,
        sendto: Callable[[Any, Any], None] | None,
        addr: Any,
        transport: Any = None,
    ) -> None:
        """Protect with `session` and send with `sendto(data, addr)` (what `ready` sets up).

        `transport`, the datagram transport `sendto` belongs to, is checked before each send.
        """
        self._srtp = internals.SrtpBuffer(session)
        self._sendto = sendto
        self._addr = addr
        self._transport = transport
        self.buffer = self._srtp.view

    def write(self, src: Any, length: int) -> None:
        """Copy `length` clear bytes from `src` (bytes or buffer) into `buffer`."""
        assert self._srtp is not None
        self._srtp.load(src, length)

    def send(self, length: int) -> bool:
        """Protect and send the packet in `buffer`; False when it did not go out."""
        srtp = self._srtp
        if srtp is None:
            return False
        protected = srtp.protect(length)
        if protected < 0:
            return False
        # A bytes copy, not a view: a loop may queue the datagram while the
        # session buffer is reused for the next packet.
        return self._emit(srtp.packed[0:protected])

    def send_rtcp(self, packet: bytes) -> bool:
        """For rare control packets; allocation here does not matter."""
        if not self.ready():
            return False
        assert self._srtp is not None
        return self._emit(self._srtp.protect_rtcp(packet))

    def _emit(self, data: bytes) -> bool:
        transport = self._transport
        if transport is not None and transport.is_closing():
            # The subscriber's socket is gone: stop here, once, instead of a
            # warning from asyncio for every packet still forwarded to it.
            self.close()
            return False
        try:
            if self._sendto is not None:
                self._sendto(data, self._addr)
            elif self._slow_send is not None:
                task = asyncio.ensure_future(self._slow_send(data, self._addr))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            else:
                return False
        except (OSError, RuntimeError, AttributeError):
            # A socket closed under us: the subscription is going away.
            self.close()
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self.closed = True
        self.buffer = None
        self._sendto = None
        self._slow_send = None
        self._transport = None
        if self._protocol is not None:
            internals.release_socket(self._protocol)
            self._protocol = None
