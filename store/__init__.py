"""Ports and their backends: room store, webhook receipts, event log, relay directory."""
