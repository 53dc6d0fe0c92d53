"""The consultation room domain: appointments, join windows, room lifecycle.

Plain Python with no I/O, so every rule is a unit test away.
"""
