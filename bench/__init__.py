"""Benchmarks: ``python -m bench.compile`` and ``python -m bench.overhead`` (they print, never assert)."""
