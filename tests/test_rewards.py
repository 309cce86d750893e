"""Verifiable rewards: exact match (normalised, after any `</think>`), the think format, the registry."""

from __future__ import annotations

import pytest

from sailvl.errors import ConfigError
from sailvl.eval.scorers import normalize_vqa
from sailvl.train.rewards import (
    check_rewards,
    exact_match,
    final_answer,
    get_reward,
    normalize_answer,
    think_format,
    total_reward,
)


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("blue", "blue", 1.0),
        ("Blue.", "blue", 1.0),
        ("  the blue ", "blue", 1.0),
        ("two", "2", 1.0),
        ("red", "blue", 0.0),
        ("blue circle", "blue", 0.0),  # exact, not substring
        ("<think>maybe red</think> Blue", "blue", 1.0),  # the answer is what follows </think>
        ("<think>blue</think> red", "blue", 0.0),
        ("<think>blue", "blue", 0.0),  # no closing tag: the whole text is the answer
        ("", "blue", 0.0),
    ],
)
def test_exact_match(completion, gold, expected):
    assert exact_match(completion, gold) == expected


@pytest.mark.parametrize(
    "text", ["Blue.", "The Two dogs", "an apple", "  red  circle ", "3", "Yes!", "Red, blue"]
)
def test_normalisation_agrees_with_eval_vqa_matching(text):
    # The RL reward should count an answer right exactly when the held-out benchmark's short-answer scorer
    # (sailvl.eval.scorers.vqa_match) would; train may not import eval, so the rule is checked here.
    assert normalize_answer(text) == normalize_vqa(text)


def test_final_answer_takes_text_after_the_last_think_block():
    assert final_answer("<think>a</think><think>b</think> c") == " c"
    assert final_answer("no thinking") == "no thinking"


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>the shape is blue</think>blue", 1.0),
        ("  <think>\nreasons\n</think>\n blue", 1.0),
        ("<think>reasons</think>", 0.0),  # no answer after the block
        ("<think>reasons</think>   ", 0.0),
        ("blue", 0.0),
        ("blue <think>late</think> red", 0.0),  # the block must come first
        ("<think>unclosed blue", 0.0),
    ],
)
def test_think_format(completion, expected):
    assert think_format(completion) == expected


def test_registry_and_weighted_total():
    assert get_reward("exact_match") is exact_match and get_reward("format") is think_format
    with pytest.raises(ConfigError, match="unknown reward 'judge'.*exact_match, format"):
        get_reward("judge")
    with pytest.raises(ConfigError, match="empty"):
        check_rewards({})
    parts = total_reward({"exact_match": 1.0, "format": 0.5}, "<think>x</think> blue", "blue")
    assert parts == {"exact_match": 1.0, "format": 1.0, "reward": 1.5}
