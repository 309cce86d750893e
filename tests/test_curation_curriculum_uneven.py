"""Curriculum split when one score is mostly tied: equal stages cannot rise, uneven boundaries can."""

import numpy as np

from sailvl.curation.scoring import split_curriculum, stage_means
from sailvl.data.sample import Sample


def test_mostly_tied_difficulty_still_gives_strictly_rising_stages():
    rng = np.random.default_rng(0)
    samples = []
    for i in range(600):
        hard = i % 15 == 0  # ~7% of samples above difficulty 1, like a colour/shape/digit world
        samples.append(Sample(id=str(i), source="s", images=[], conversation=[], metadata={
            "difficulty": 2 if hard else 1,
            "complexity": float(rng.uniform(1, 2) + hard),
            "relevance": float(rng.uniform(3, 5)),
        }))  # fmt: skip
    keys = ["difficulty", "complexity", "relevance"]
    stages = split_curriculum(samples, keys, 3)
    assert sum(len(s) for s in stages) == 600
    assert len({x.id for s in stages for x in s}) == 600
    means = stage_means(stages, keys)
    for key in keys:
        assert means[0][key] < means[1][key] < means[2][key], (key, means)
