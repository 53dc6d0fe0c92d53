"""TURN: short-lived credentials for coturn's `use-auth-secret` (TURN REST API)."""
