"""The consultation room domain: appointments, join windows, room lifecycle.

Plain Python with no I/O, so every rule is a unit test away. The room's state
is `rooms.room`; what can happen to it is split by concern: `rooms.lifecycle`
(create, reschedule, cancel, end, close, no-show), `rooms.admission` (guests,
check-in, admit, deny, return to waiting), `rooms.denials` (undo a denial,
re-open) and `rooms.presence` (leave, step away, resume, take over, away
expiry). `waiting_room` builds on this package, never the
reverse.
"""
