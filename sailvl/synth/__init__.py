"""The synthetic visual world: scenes, captions, QA, judge data and held-out benchmarks for tiny VLMs."""

from sailvl.synth.world import generate_world, parse_tasks

__all__ = ["generate_world", "parse_tasks"]
