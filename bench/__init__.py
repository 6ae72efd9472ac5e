"""Benchmarks: ``python -m bench.ack``, ``bench.inflight``, ``bench.relay`` (each with ``--quick``).

Each prints progress lines and, as its very last line, one JSON object with its figures.
"""
