"""Paired statistics and verdict words (`sailvl.experiment.stats`): values checked by hand or against SciPy."""

from __future__ import annotations

import math

import pytest

from sailvl.experiment import recaption
from sailvl.experiment.base import seed_control_gaps
from sailvl.experiment.stats import (
    WORDS,
    Interval,
    collapsed_tasks,
    item_bootstrap,
    paired_differences,
    seeds_to_resolve,
    t_interval,
    verdict_word,
)


def test_t_interval_by_hand():
    # mean 2, sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    iv = t_interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.n == 3
    assert iv.low == pytest.approx(2 - 2.484138, abs=1e-5) and iv.high == pytest.approx(
        2 + 2.484138, abs=1e-5
    )
    one = t_interval([5.0])
    assert one.mean == 5.0 and one.low == -math.inf and one.high == math.inf  # one seed knows no spread
    assert t_interval([4.0, 4.0]).low == 4.0  # no spread: zero width
    with pytest.raises(ValueError, match="one per seed"):
        paired_differences([1.0, 2.0], [1.0])


def test_verdict_words():
    up, down, across = Interval(5, 1, 9, 3), Interval(-5, -9, -1, 3), Interval(1, -2, 4, 3)
    assert verdict_word([], up) == "insensitive"  # no controls
    assert verdict_word([25.0, 9.9, 30.0], up) == "insensitive"  # one seed's controls do not separate
    assert verdict_word([10.0, 12.0, 30.0], up) == "reproduced"
    assert verdict_word([10.0, 12.0, 30.0], down) == "contradicted"
    assert verdict_word([10.0, 12.0, 30.0], across) == "inconclusive"
    assert verdict_word([10.0, 12.0, 30.0], None) == "inconclusive"
    assert set(WORDS) == {"reproduced", "contradicted", "inconclusive", "insensitive"}


def _arm(values: list[float]) -> list[dict]:
    mean = sum(values) / len(values)
    return [{"x": 0, "metrics": {"open answer": {"mean": mean, "std": 0.0, "values": values}}}]


def _recaption_summary(
    gold: list[float], shuffled: list[float], curated: list[float], raw: list[float]
) -> dict:
    """The controls (short gold / shuffled captions) as given; the size-matched raw arm 5 points below curated."""
    arms = {"gold-short": _arm(gold), "shuffled-short": _arm(shuffled), "curated-recaptions": _arm(curated),
            "raw-curated-images": _arm([c - 5 for c in curated]), "raw-alt-text": _arm(raw)}  # fmt: skip
    return {"experiment": "recaption", "seeds": [0, 1, 2], "arms": arms}


def test_recaption_verdict_with_controls():
    """With control arms, the verdict is decided by them first: a large paired effect is still `insensitive` when
    one seed's controls are 8 points apart, and `reproduced` once every seed's are >= 10."""
    blind = _recaption_summary([50, 52, 48], [30, 44, 20], [45, 47, 44], [30, 31, 29])
    assert seed_control_gaps(blind, recaption.CONTROLS) == [20.0, 8.0, 28.0]
    text = recaption.verdict(blind)
    assert text.startswith("insensitive (controls gold-short - shuffled-short = +20.0, +8.0, +28.0")
    seeing = _recaption_summary([50, 52, 48], [30, 40, 20], [45, 47, 44], [30, 31, 29])
    text = recaption.verdict(seeing)
    assert text.startswith("reproduced (") and "paired effect +15.33 points" in text
    worse = _recaption_summary([50, 52, 48], [30, 40, 20], [28, 29, 27], [30, 31, 29])
    assert recaption.verdict(worse).startswith("contradicted")
    mixed = _recaption_summary([50, 52, 48], [30, 40, 20], [35, 25, 33], [30, 31, 29])
    assert recaption.verdict(mixed).startswith("inconclusive")


def test_item_bootstrap_sees_test_set_noise():
    same = [100.0, 0.0] * 50
    iv = item_bootstrap(same, same)
    assert (iv.mean, iv.low, iv.high, iv.n) == (0.0, 0.0, 0.0, 100)
    better = [100.0] * 80 + [0.0] * 20
    worse = [100.0] * 40 + [0.0] * 60
    iv = item_bootstrap(better, worse, seed=1)
    assert iv.mean == pytest.approx(40.0) and 25 < iv.low < 40 < iv.high < 55
    assert item_bootstrap(better, worse, seed=1) == iv  # seeded: the same resamples
    with pytest.raises(ValueError, match="equal non-empty"):
        item_bootstrap([1.0], [1.0, 0.0])


def test_collapsed_tasks_and_seeds_to_resolve():
    answers = {"colour": ["red", "Red ", "blue"], "shape": ["circle", "square", "star"], "digit": []}
    assert collapsed_tasks(answers) == ["colour"]  # two distinct answers after normalising
    assert collapsed_tasks(answers, max_distinct=3) == ["colour", "shape"]
    tight, loose = (
        seeds_to_resolve([4.0, 6.0, 5.0], margin=5.0),
        seeds_to_resolve([0.0, 20.0, 10.0], margin=5.0),
    )
    assert tight == 3 and loose > tight  # the wider the paired spread, the more seeds
    assert seeds_to_resolve([5.0], margin=5.0) is None


def test_collapsed_runs_read_predictions_by_task(tmp_path):
    """Only the run answering one colour to every colour item is flagged, with that task alone."""
    import json

    from sailvl.experiment.run import collapsed_runs

    bench = tmp_path / "shared-test" / "bench"
    bench.mkdir(parents=True)
    rows = [(i, "colour" if i < 3 else "shape") for i in range(6)]
    (bench / "synth_vqa.tsv").write_text("index\tcategory\n" + "".join(f"{i}\t{c}\n" for i, c in rows))
    answers = {"varied": ["red", "blue", "green", "circle", "square", "star"],
               "constant": ["red", "red", "red", "circle", "square", "star"]}  # fmt: skip
    for arm, values in answers.items():
        path = tmp_path / "seed-0" / "eval" / arm / "final" / "synth_vqa" / "predictions.jsonl"
        path.parent.mkdir(parents=True)
        lines = [json.dumps({"index": str(i), "value": v}) for i, v in enumerate(values)]
        path.write_text("\n".join(lines) + '\n{"index": "5", "val')  # a torn last line is ignored
    flagged = collapsed_runs([tmp_path / "seed-0"])
    assert flagged == [{"seed": "seed-0", "arm": "constant", "point": "final", "tasks": ["colour"]}]
