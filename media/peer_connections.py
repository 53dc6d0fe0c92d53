"""The aiortc peer connections of the relay: creation, codecs, transceivers, SDP checks."""

from __future__ import annotations

from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from media.errors import MediaError
from media.relay_service import IceServerConfig

MAX_SDP_LENGTH = 32 * 1024
FORWARDED_CODECS = {"audio": "audio/opus", "video": "video/vp8"}
# What the relay's answer asks of a publisher's Opus encoder (a sender encodes
# what the receiver's fmtp asks for; aiortc writes none for Opus): in-band FEC
# so speech survives a lossy mobile uplink, DTX so silence costs almost
# nothing on a thin one. aiortc's codec preferences cannot carry parameters
# (they must equal its capabilities), hence the SDP edit.
OPUS_PARAMETERS = (("minptime", "10"), ("useinbandfec", "1"), ("usedtx", "1"))


def check_sdp(sdp: object) -> str:
    if not isinstance(sdp, str) or not sdp or len(sdp) > MAX_SDP_LENGTH:
        raise MediaError("invalid_request", "The session description is missing or too large.")
    return sdp


def new_peer_connection(ice_servers: tuple[IceServerConfig, ...]) -> RTCPeerConnection:
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in ice_servers
    ]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


def codec_preferences(kind: str, *, rtx: bool = True) -> list[Any]:
    """The forwarded codec of `kind` (and its RTX unless `rtx=False`)."""
    capabilities = RTCRtpSender.getCapabilities(kind)
    wanted = FORWARDED_CODECS[kind]
    return [
        codec
        for codec in capabilities.codecs
        if codec.mimeType.lower() == wanted or (rtx and codec.mimeType.lower().endswith("/rtx"))
    ]


def with_opus_protection(sdp: str) -> str:
    """`sdp` with OPUS_PARAMETERS in the fmtp of every Opus payload type (kept where set)."""
    lines = sdp.split("\r\n")
    opus = {
        line.split(":", 1)[1].split(" ", 1)[0]
        for line in lines
        if line.startswith("a=rtpmap:") and " opus/48000" in line.lower()
    }
    out: list[str] = []
    with_fmtp = set()
    for line in lines:
        if line.startswith("a=fmtp:"):
            payload_type, _, params = line[len("a=fmtp:") :].partition(" ")
            if payload_type in opus:
                with_fmtp.add(payload_type)
                present = {p.split("=", 1)[0].strip() for p in params.split(";") if p.strip()}
                extra = [f"{k}={v}" for k, v in OPUS_PARAMETERS if k not in present]
                line = ";".join([params, *extra]) if params else ";".join(extra)
                line = f"a=fmtp:{payload_type} {line}"
        out.append(line)
    result: list[str] = []
    for line in out:
        result.append(line)
        if line.startswith("a=rtpmap:"):
            payload_type = line[len("a=rtpmap:") :].split(" ", 1)[0]
            if payload_type in opus and payload_type not in with_fmtp:
                params = ";".join(f"{k}={v}" for k, v in OPUS_PARAMETERS)
                result.append(f"a=fmtp:{payload_type} {params}")
    return "\r\n".join(result)


async def receive_offer(pc: RTCPeerConnection, sdp: str) -> None:
    """Apply a publisher's offer with one receiving transceiver per kind it offers."""
    offered = {line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")}
    # Only kinds the offer has: aiortc cannot answer with an unmatched transceiver.
    for kind in ("audio", "video"):
        if kind not in offered:
            continue
        transceiver = pc.addTransceiver(kind, direction="recvonly")
        transceiver.setCodecPreferences(codec_preferences(kind))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))


def forwarded_transceivers(pc: RTCPeerConnection) -> list[Any]:
    """The first negotiated receiving transceiver of each forwarded kind."""
    chosen: dict[str, Any] = {}
    for transceiver in pc.getTransceivers():
        kind = transceiver.kind
        if kind in chosen or kind not in FORWARDED_CODECS:
            continue
        if transceiver.direction != "recvonly" or transceiver.mid is None:
            continue
        chosen[kind] = transceiver
    if not chosen:
        raise MediaError("media_failed", "The offer carries no audio or video.")
    return list(chosen.values())


async def apply_answer(pc: RTCPeerConnection, sdp: str) -> None:
    if pc.signalingState != "have-local-offer":
        raise MediaError("invalid_request", "This subscription was already answered.")
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
    except Exception as exc:
        raise MediaError("media_failed", "The media answer could not be applied.") from exc
