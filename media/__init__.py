"""The media relay: an aiortc SFU that forwards RTP packets whose media it never decodes."""
