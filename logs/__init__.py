"""How every teleconsult process writes its log lines (serve, relay nodes, relay workers)."""
