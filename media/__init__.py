"""The media relay: an aiortc SFU that forwards encoded frames it never decodes."""
