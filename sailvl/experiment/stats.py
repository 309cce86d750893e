"""Paired statistics and the four verdict words of an experiment (a leaf: NumPy and SciPy only).

An experiment can only say something when it could have seen an effect: its positive control (e.g. gold captions)
must beat its negative control (e.g. captions shuffled across images) by `CONTROL_MIN_GAP` points in every seed.
Otherwise the verdict is `insensitive`, whatever the arms did. When the controls separate, the effect is read from
paired per-seed differences (the same held-out items in both arms): a t interval over seeds above zero is
`reproduced`, below zero `contradicted`, across zero `inconclusive`. Within a seed, an item bootstrap says how much
of a difference the finite test set alone can produce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

WORDS = ("reproduced", "contradicted", "inconclusive", "insensitive")
CONTROL_MIN_GAP = 10.0  # points: positive minus negative control, in every seed (issue 27)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean difference with its two-sided interval (points); `n` the values it rests on."""

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def paired_differences(treatment: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Per-seed treatment minus baseline; both lists are index-aligned by seed (the same items in each seed)."""
    if len(treatment) != len(baseline):
        raise ValueError(
            f"paired values need one per seed in each arm, got {len(treatment)} and {len(baseline)}"
        )
    return [float(a) - float(b) for a, b in zip(treatment, baseline, strict=True)]


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of `values` with Student's t interval. One value has an unbounded interval (no spread is known);
    identical values have a zero-width one."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("a t interval needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, -math.inf, math.inf, 1)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size))


def item_bootstrap(
    treatment: Sequence[float],
    baseline: Sequence[float],
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile bootstrap of the mean paired item difference (per-item scores, e.g. 0/100, same items in the
    same order): resampling items, not seeds, so it measures the test set's own noise within one seed."""
    a, b = np.asarray(treatment, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"paired item scores need two equal non-empty 1-D lists, got {a.shape} and {b.shape}"
        )
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(diff.mean()), float(low), float(high), int(diff.size))


def control_gaps(positive: Sequence[float], negative: Sequence[float]) -> list[float]:
    """Positive minus negative control score per seed (points)."""
    return paired_differences(positive, negative)


def verdict_word(gaps: Sequence[float], effect: Interval | None, min_gap: float = CONTROL_MIN_GAP) -> str:
    """`insensitive` unless every seed's control gap is >= min_gap (no controls: insensitive); then the sign of
    the effect's interval: above 0 reproduced, below 0 contradicted, across 0 (or no effect measured)
    inconclusive."""
    if not gaps or min(gaps) < min_gap:
        return "insensitive"
    if effect is None:
        return "inconclusive"
    if effect.low > 0:
        return "reproduced"
    if effect.high < 0:
        return "contradicted"
    return "inconclusive"


def controls_sentence(
    gaps: Sequence[float], controls: tuple[str, str] | None, min_gap: float = CONTROL_MIN_GAP
) -> str:
    """Why the controls do or do not let the experiment see (the clause after the verdict word)."""
    if controls is None:
        return "the experiment has no positive / negative control arms, so it cannot show that it could see an effect"
    if not gaps:
        return f"no seed has both controls ({controls[0]}, {controls[1]}) evaluated"
    shown = ", ".join(f"{g:+.1f}" for g in gaps)
    ok = min(gaps) >= min_gap
    return (f"controls {controls[0]} - {controls[1]} = {shown} points per seed "
            f"({'all' if ok else 'not all'} >= {min_gap:g})")  # fmt: skip


def collapsed_tasks(answers_by_task: dict[str, Sequence[str]], max_distinct: int = 2) -> list[str]:
    """Tasks whose answers take at most `max_distinct` distinct values (a model giving constant answers: its
    accuracy is the share of the majority answer, not what it learned). Normalised by case and whitespace."""
    flagged = []
    for task, answers in sorted(answers_by_task.items()):
        distinct = {" ".join(str(a).lower().split()) for a in answers}
        if answers and len(distinct) <= max_distinct:
            flagged.append(task)
    return flagged


def seeds_to_resolve(
    differences: Sequence[float], margin: float, confidence: float = CONFIDENCE
) -> int | None:
    """Seeds a paired t interval needs for a half-width under `margin`, given the spread of `differences` so far
    (None with fewer than two values or no margin). A planning figure: the spread itself is an estimate."""
    x = np.asarray(differences, dtype=np.float64)
    if x.size < 2 or margin <= 0:
        return None
    sd = float(x.std(ddof=1))
    n = 2
    while n < 1000 and scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) >= margin:
        n += 1
    return n
