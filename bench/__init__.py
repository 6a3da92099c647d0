"""Benchmarks: ``python -m bench`` (``make bench``). Each prints and records measured figures, never asserts."""
