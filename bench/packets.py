"""The type of an encoded frame moving through the relay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import av

    EncodedPacket: TypeAlias = av.Packet[Any]
else:
    from av import Packet as EncodedPacket

__all__ = ["EncodedPacket"]
