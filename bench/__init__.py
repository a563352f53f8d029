"""Benchmarks: each prints one JSON document with its figures beside a bare baseline measured in the same run.

    python -m bench.api         ticket create / "my open tickets" / ticket detail against 100k seeded tickets

The VM's speed drifts by up to 2x between runs, so a figure is only ever compared with figures from the same run.
Results are also written under bench/results/ (git-ignored).
"""
