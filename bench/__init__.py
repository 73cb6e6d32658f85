"""Benchmarks of the outbox relay: ``python -m bench`` (see docs/performance.md)."""
