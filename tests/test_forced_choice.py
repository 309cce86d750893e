"""Likelihood forced choice (`sailvl.eval.forced_choice`): candidates per task, the pick, and `sailvl eval
--forced-choice` on a tiny world."""

from __future__ import annotations

import json

import pytest
import torch

from sailvl.eval import forced_choice as fc
from sailvl.eval.registry import resolve_benchmark
from sailvl.infer.score import AnswerScores


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("fc")
    generate_world(root / "world", 24, 0, tasks="colour,shape", n_bench=12)
    make_tiny_model_dir(root / "world", root / "tiny", seed=0)
    return root


def _oracle(prefer_gold: bool, golds: dict[str, str]):
    """A score_answers stand-in: the gold answer of the asked question gets log-prob 0, others -5 (or inverted)."""

    def score(model, processor, requests, answers, batch_size, max_tiles, cache):
        gold = golds[requests[0].question]
        best = [(a == gold) == prefer_gold for a in answers]
        return [AnswerScores([1], torch.tensor([0.0 if b else -5.0]), torch.zeros(1)) for b in best]

    return score


def test_the_most_likely_candidate_is_picked(world, monkeypatch):
    from sailvl.eval.tsv import read_benchmark

    spec, path = resolve_benchmark(str(world / "world" / "bench" / "synth_vqa.tsv"), None)
    items = list(read_benchmark(path))
    golds = {f"item {it.index}": it.answer.strip() for it in items}
    monkeypatch.setattr(
        fc, "build_prompt", lambda spec, item: f"item {item.index}"
    )  # the stand-in keys on it
    choices = fc.task_choices(items)
    assert set(choices) == {"colour", "shape"} and all(len(c) >= 2 for c in choices.values())
    monkeypatch.setattr(fc, "score_answers", _oracle(True, golds))
    right = fc.forced_choice_score(None, type("P", (), {"tile_size": 112})(), spec, path)
    assert right["score"] == 100.0 and right["n"] == len(items)
    expected_chance = sum(100 / len(choices[it.category]) for it in items) / len(items)
    assert right["chance"] == pytest.approx(expected_chance)
    monkeypatch.setattr(fc, "score_answers", _oracle(False, golds))
    wrong = fc.forced_choice_score(None, type("P", (), {"tile_size": 112})(), spec, path, limit=5)
    assert wrong["score"] == 0.0 and wrong["n"] == 5  # --limit picks the same first rows as the eval


def test_eval_forced_choice_writes_open_answer_benchmarks_only(world):
    from sailvl.cli import main

    out = world / "eval"
    benches = [
        "--bench",
        str(world / "world/bench/synth_vqa.tsv"),
        "--bench",
        str(world / "world/bench/synth_mcq.tsv"),
    ]
    main(["eval", "--model", str(world / "tiny"), *benches, "--limit", "6", "--max-tiles", "1", "--out", str(out),
          "--forced-choice"])  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    vqa = results["benchmarks"]["synth_vqa"]["forced_choice"]
    assert vqa["n"] == 6 and 0 <= vqa["score"] <= 100 and set(vqa["per_category"]) <= {"colour", "shape"}
    assert "forced_choice" not in results["benchmarks"]["synth_mcq"]  # letters already are a choice
