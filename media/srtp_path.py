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

Both use pylibsrtp, aiortc and aioice internals; `check_internals` fails
loudly when an upgrade moves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from aioice.ice import StunProtocol
from pylibsrtp import Session
from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

logger = logging.getLogger(__name__)

# Room for ~0.25 s of a busy worker's input: a relay descheduled for a few
# milliseconds must not lose packets in the kernel (capped by net.core.rmem_max).
RECEIVE_BUFFER = 4 * 1024 * 1024
# libsrtp appends up to 16 bytes of authentication tag (SRTP_MAX_TRAILER_LEN).
MAX_PROTECTED_INPUT = 1500 - 16

PacketSink = Callable[[memoryview, int, float], None]


def check_internals(dtls: Any) -> None:
    for name in ("_rx_srtp", "_tx_srtp", "transport", "_handle_rtcp_data"):
        if not hasattr(dtls, name):
            raise RuntimeError(f"this aiortc version has no RTCDtlsTransport.{name}")
    connection = dtls.transport._connection
    for name in ("data_received", "_nominated"):
        if not hasattr(connection, name):
            raise RuntimeError(f"this aioice version has no Connection.{name}")


def _check_session(session: Session) -> None:
    for name in ("_srtp", "_cdata", "_buffer"):
        if not hasattr(session, name):
            raise RuntimeError(f"this pylibsrtp version has no Session.{name}")


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
        for protocol in transceiver.receiver.transport.transport._connection._protocols:
            enlarge_receive_buffer(protocol)


class SrtpIngress:
    """Feeds decrypted RTP from one DTLS transport to `sink(buffer, length)`.

    `buffer` is only valid during the call: it is the session's scratch area.
    """

    def __init__(self, dtls: Any, sink: PacketSink) -> None:
        check_internals(dtls)
        self._dtls = dtls
        self._sink = sink
        self._connection = dtls.transport._connection
        self._fallback = self._connection.data_received
        self._session: Any = None
        self._srtp: Any = None
        self._cdata: Any = None
        self._view: memoryview | None = None
        self._length = ffi.new("int *")
        self._protocol: Any = None
        self.receive_buffer = 0
        self.received = 0
        self.rejected = 0
        self._connection.data_received = self._data_received

    def _bind(self) -> bool:
        session = self._dtls._rx_srtp
        if session is None:
            return False
        _check_session(session)
        self._session = session
        self._srtp = session._srtp[0]
        self._cdata = session._cdata
        self._view = memoryview(session._buffer)
        self._take_socket()
        return True

    def _take_socket(self) -> None:
        # Straight from the socket of the nominated pair: skips aioice's attempt
        # to parse every datagram as STUN (an exception per media packet).
        pair = self._connection._nominated.get(1)
        if pair is None or not isinstance(pair.protocol, StunProtocol):
            return
        protocol = pair.protocol
        fallback = protocol.datagram_received

        def datagram_received(data: bytes, addr: Any) -> None:
            first = data[0]
            if first < 128 or first > 191 or 192 <= data[1] <= 223 or len(data) > 1500:
                fallback(data, addr)
            else:
                self._forward(data)

        protocol.datagram_received = datagram_received  # type: ignore[method-assign,assignment]
        self._protocol = protocol
        self.receive_buffer = enlarge_receive_buffer(protocol)

    def _data_received(self, data: bytes, component: int) -> None:
        first = data[0]
        # RFC 7983: 128-191 is RTP or RTCP; RTCP (PT 192-223) keeps aiortc's path.
        if first < 128 or first > 191 or 192 <= data[1] <= 223 or len(data) > 1500:
            self._fallback(data, component)
            return
        if self._view is None and not self._bind():
            self._fallback(data, component)
            return
        self._forward(data)

    def _forward(self, data: bytes) -> None:
        now = time.monotonic()
        length = len(data)
        ffi.memmove(self._cdata, data, length)
        self._length[0] = length
        if lib.srtp_unprotect(self._srtp, self._cdata, self._length) != 0:
            self.rejected += 1
            return
        self.received += 1
        self._sink(self._view, self._length[0], now)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._connection.data_received == self._data_received:
            del self._connection.data_received
        if self._protocol is not None and "datagram_received" in vars(self._protocol):
            del self._protocol.datagram_received
        self._view = None


class SrtpEgress:
    """Protects and sends RTP to one subscriber connection.

    Callers write the clear packet into `buffer` (once `ready()` is true),
    then call `send(length)`.
    """

    def __init__(self, dtls_of: Callable[[], Any]) -> None:
        self._dtls_of = dtls_of
        self.buffer: memoryview | None = None
        self._srtp: Any = None
        self._cdata: Any = None
        self.cdata: Any = None
        self._session: Any = None
        self._length = ffi.new("int *")
        self._packed: Any = None
        self._sendto: Callable[[Any, Any], None] | None = None
        self._addr: Any = None
        self._slow_send: Callable[[bytes, Any], Any] | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self.sent = 0
        self.closed = False

    def ready(self) -> bool:
        if self.buffer is not None:
            return True
        if self.closed:
            return False
        dtls = self._dtls_of()
        if dtls is None or dtls.state != "connected" or dtls._tx_srtp is None:
            return False
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return False
        session = dtls._tx_srtp
        _check_session(session)
        self._session = session
        self._srtp = session._srtp[0]
        self._cdata = session._cdata
        self.cdata = session._cdata
        self._addr = pair.remote_addr
        if isinstance(pair.protocol, StunProtocol) and pair.protocol.transport is not None:
            self._sendto = pair.protocol.transport.sendto
        else:
            # A TURN-relayed pair wraps data itself; rare for a relay, kept correct.
            self._slow_send = pair.protocol.send_data
        self._packed = session._buffer
        self.buffer = memoryview(session._buffer)
        return True

    def write(self, src: Any, length: int) -> None:
        """Copy `length` clear bytes from `src` (bytes or buffer) into `buffer`."""
        ffi.memmove(self.cdata, src, length)

    def send(self, length: int) -> None:
        self._length[0] = length
        if lib.srtp_protect(self._srtp, self._cdata, self._length) != 0:
            return
        # A bytes copy, not a view: a loop may queue the datagram while the
        # session buffer is reused for the next packet.
        self._emit(self._packed[0 : self._length[0]])

    def send_rtcp(self, packet: bytes) -> None:
        """For rare control packets; allocation here does not matter."""
        if not self.ready():
            return
        self._emit(self._session.protect_rtcp(packet))

    def _emit(self, data: bytes) -> None:
        self.sent += 1
        try:
            if self._sendto is not None:
                self._sendto(data, self._addr)
            elif self._slow_send is not None:
                task = asyncio.ensure_future(self._slow_send(data, self._addr))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        except (OSError, RuntimeError, AttributeError):
            # A socket closed under us: the subscription is going away.
            self.close()

    def close(self) -> None:
        self.closed = True
        self.buffer = None
        self._sendto = None
        self._slow_send = None
