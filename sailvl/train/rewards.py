"""Verifiable rewards for RL stages (`objective: grpo`): a registry of name -> reward function.

A reward function takes the decoded completion, the gold answer and the prompt's Sample, and returns a float
(1.0 / 0.0 for the built-in checks). A stage's reward is the weighted sum of `GrpoSpec.rewards`. A judge over
the OpenAI API is a planned addition (`sailvl.curation` has the judge client to build it on).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sailvl.errors import ConfigError

RewardFn = Callable[[str, str, Any], float]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_ARTICLES = {"a", "an", "the"}
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate("zero one two three four five six seven eight nine ten".split())  # noqa: SIM905
}
_PUNCTUATION = re.compile(r"[^\w\s]")
_FORMAT = re.compile(rf"^\s*{re.escape(THINK_OPEN)}.*?{re.escape(THINK_CLOSE)}\s*\S", re.DOTALL)


def final_answer(completion: str) -> str:
    """The answer part of a completion: what follows the last `</think>` when there is one, else all of it."""
    _, closed, after = completion.rpartition(THINK_CLOSE)
    return after if closed else completion


def normalize_answer(text: str) -> str:
    """Short-answer normalisation (as eval's VQA matching on single words and phrases): lowercase, punctuation
    dropped, number words as digits, articles dropped, whitespace collapsed ("The Two." -> "2")."""
    words = _PUNCTUATION.sub(" ", text.lower()).split()
    return " ".join(_NUMBER_WORDS.get(w, w) for w in words if w not in _ARTICLES)


def exact_match(completion: str, gold: str, sample: Any = None) -> float:
    """1.0 when the completion's final answer equals the gold answer after `normalize_answer`, else 0.0."""
    return float(normalize_answer(final_answer(completion)) == normalize_answer(gold))


def think_format(completion: str, gold: str = "", sample: Any = None) -> float:
    """1.0 when the completion opens with a `<think>...</think>` block followed by a non-empty answer."""
    return float(_FORMAT.match(completion) is not None)


REWARDS: dict[str, RewardFn] = {"exact_match": exact_match, "format": think_format}


def get_reward(name: str) -> RewardFn:
    """The registered reward function `name`; a ConfigError lists the known names."""
    if name not in REWARDS:
        raise ConfigError(
            f"unknown reward {name!r} in grpo.rewards; known rewards: {', '.join(sorted(REWARDS))}"
        )
    return REWARDS[name]


def check_rewards(weights: dict[str, float]) -> None:
    """Refuse a `grpo.rewards` mapping that names an unknown reward or has no reward at all."""
    if not weights:
        raise ConfigError("grpo.rewards is empty; name at least one reward, e.g. {exact_match: 1.0}")
    for name in weights:
        get_reward(name)


def total_reward(
    weights: dict[str, float], completion: str, gold: str, sample: Any = None
) -> dict[str, float]:
    """Each named reward of `completion` and their weighted sum under the key "reward"."""
    parts = {name: get_reward(name)(completion, gold, sample) for name in weights}
    parts["reward"] = sum(weights[name] * value for name, value in parts.items())
    return parts
