"""The synthetic visual world: scenes, captions, QA, judge data and held-out benchmarks for tiny VLMs."""

from sailvl.synth.qa import TASKS
from sailvl.synth.tiny_model import make_tiny_model_dir, train_tokenizer, world_texts
from sailvl.synth.world import generate_world, parse_tasks

__all__ = ["TASKS", "generate_world", "make_tiny_model_dir", "parse_tasks", "train_tokenizer", "world_texts"]
