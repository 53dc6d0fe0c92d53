"""The relay's answer asks a publisher's Opus for in-band FEC and DTX (media/peer_connections)."""

from __future__ import annotations

from media.peer_connections import with_opus_protection

ANSWER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96",
        "a=rtpmap:96 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98",
        "a=rtpmap:97 VP8/90000",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "",
    ]
)


def test_an_fmtp_line_is_added_for_opus_only() -> None:
    sdp = with_opus_protection(ANSWER)
    lines = sdp.split("\r\n")
    index = lines.index("a=rtpmap:96 opus/48000/2")
    assert lines[index + 1] == "a=fmtp:96 minptime=10;useinbandfec=1;usedtx=1"
    assert "a=fmtp:98 apt=97" in lines
    assert sum(line.startswith("a=fmtp:") for line in lines) == 2
    assert sdp.endswith("\r\n")


def test_existing_parameters_are_kept_and_not_repeated() -> None:
    offer = ANSWER.replace(
        "a=rtpmap:96 opus/48000/2\r\n", "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=0\r\n"
    )
    sdp = with_opus_protection(offer)
    assert "a=fmtp:96 useinbandfec=0;minptime=10;usedtx=1" in sdp
    assert with_opus_protection(sdp) == sdp


def test_without_opus_nothing_changes() -> None:
    video_only = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 VP8/90000\r\n"
    assert with_opus_protection(video_only) == video_only
