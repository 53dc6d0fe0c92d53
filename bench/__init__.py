"""Benchmarks and their baselines: tooling, never imported by the server."""
