"""The virtual waiting room across a practitioner's rooms: the order they are seen in.

Dependencies point one way: `waiting_room` builds on `rooms`, never the
reverse. A room holds its own queue (`rooms.waiting_queue`) because every
transition of the room changes it under the same atomic update; what needs
several rooms at once (the desk's rows, each waiting entry's place and
expected start across the practitioner's day) is read from rooms and lives
here. So `rooms` is complete on its own, and a test (tests/test_architecture.py)
fails on an import from `rooms` into `waiting_room`.
"""
