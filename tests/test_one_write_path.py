"""Transports get the hub, never the room store: every change is stored and announced together.

The hub (signalling/room_hub.py) is the only holder of the store; the app
(signalling/app.py) wires it. A transport that reached the store could change
a room that nobody hears of (a booking that never reaches the open desk).
"""

from __future__ import annotations

import ast
from pathlib import Path

SIGNALLING = Path(__file__).resolve().parent.parent / "signalling"
# Where the store is made, handed to the hub and closed.
WIRING = {"app.py", "room_hub.py", "socket_fanout.py"}
STORE_MODULES = {"store.room_store", "store.redis_room_store"}
# Values of those modules a transport may use: not the store.
ALLOWED_NAMES = {"WebhookReceipt"}
STORE_NAMES = {"RoomStore", "InMemoryRoomStore", "RedisRoomStore", "ROOM_STORE"}


def _reaches(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name in STORE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            names = {alias.name for alias in node.names}
            if node.module in STORE_MODULES and not names <= ALLOWED_NAMES:
                found.append(f"from {node.module} import {', '.join(sorted(names))}")
            found += sorted(names & STORE_NAMES)
        elif isinstance(node, ast.Attribute) and node.attr in {"store", "_store"}:
            found.append(f".{node.attr} (line {node.lineno})")
    return found


def test_transports_never_reach_the_room_store() -> None:
    transports = [p for p in sorted(SIGNALLING.glob("*.py")) if p.name not in WIRING]
    assert len(transports) > 10
    reached = {
        path.name: found
        for path in transports
        if (found := _reaches(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert reached == {}


def test_the_check_sees_a_reach_through() -> None:
    source = (
        "from store.room_store import RoomStore\nasync def f(hub):\n    await hub.store.get(1)\n"
    )
    assert _reaches(ast.parse(source)) == [
        "from store.room_store import RoomStore",
        "RoomStore",
        ".store (line 3)",
    ]
