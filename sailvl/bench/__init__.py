"""Throughput benchmarks (`sailvl bench data|train|curate`): each times a sailvl path against a same-run baseline.

Not a library code path: nothing in sailvl imports this package except the CLI; it sits above `train` and may use
the synthetic world (`synth`) to have data to time.
"""
