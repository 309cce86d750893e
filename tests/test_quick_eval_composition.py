"""Composition evaluation: group by task format, cut one group at a time, report the score change per group."""

from __future__ import annotations

import json

import pytest

from sailvl.errors import SailvlError
from sailvl.eval.quick_eval import composition_eval, source_entry

# Fake learning: the score is a weighted share of each format in the training mixture; MCQ data hurts.
VALUE = {"short": 2.0, "open": 1.0, "mcq": -1.0}


def _write(path, formats):
    path.write_text(
        "".join(
            json.dumps({"id": f"{i}", "format": f, "conversations": []}) + "\n" for i, f in enumerate(formats)
        )
    )
    return source_entry(path)


class FakeTraining:
    def __init__(self):
        self.trials: list[dict[str, int]] = []

    def train(self, sources, trial_dir):
        counts: dict[str, int] = {}
        for source in sources:
            with open(source["path"]) as handle:
                for line in handle:
                    fmt = json.loads(line)["format"]
                    counts[fmt] = counts.get(fmt, 0) + 1
        self.trials.append(counts)
        (trial_dir / "counts.json").write_text(json.dumps(counts))
        return trial_dir

    def score(self, export, trial_dir):
        counts = json.loads((export / "counts.json").read_text())
        total = sum(counts.values())
        return 100 * sum(VALUE[f] * n for f, n in counts.items()) / total


def test_composition_halves_one_group_at_a_time_and_reports_the_change(tmp_path):
    a = _write(tmp_path / "a.jsonl", ["short"] * 8 + ["mcq"] * 4)
    b = _write(tmp_path / "b.jsonl", ["open"] * 6 + ["mcq"] * 4)
    fake = FakeTraining()
    report = composition_eval([a, b], tmp_path / "out", fake.train, fake.score)
    assert fake.trials[0] == {"short": 8, "mcq": 8, "open": 6}  # the full mixture first
    assert fake.trials[1:] == [
        {"short": 8, "mcq": 4, "open": 6},  # mcq halved (2 of 4 in each source)
        {"short": 8, "mcq": 8, "open": 3},
        {"short": 4, "mcq": 8, "open": 6},
    ]
    groups = {g["group"]: g for g in report["groups"]}
    assert [g["group"] for g in report["groups"]] == ["mcq", "open", "short"]
    assert groups["mcq"]["records"] == 8 and groups["mcq"]["records_kept"] == 4
    assert groups["mcq"]["delta"] > 0  # cutting harmful data raises the score
    assert groups["short"]["delta"] < 0  # cutting the most useful data lowers it
    full = 100 * (16 - 8 + 6) / 22
    assert report["full_score"] == pytest.approx(full)
    assert groups["open"]["delta"] == pytest.approx(groups["open"]["score"] - full)
    assert json.loads((tmp_path / "out" / "quick_eval.json").read_text()) == report
    # Halved files keep every field of the records they keep; a rerun reads the finished trials back.
    kept = (tmp_path / "out" / "data" / "halve-mcq" / "a.jsonl").read_text().splitlines()
    assert len(kept) == 10 and all(json.loads(line)["id"] for line in kept)
    assert composition_eval([a, b], tmp_path / "out", fake.train, fake.score) == report
    assert len(fake.trials) == 4


def test_composition_needs_two_groups_and_a_fraction(tmp_path):
    only = _write(tmp_path / "a.jsonl", ["short"] * 4)
    fake = FakeTraining()
    with pytest.raises(SailvlError, match="at least two 'format' groups"):
        composition_eval([only], tmp_path / "o", fake.train, fake.score)
    with pytest.raises(SailvlError, match="fraction"):
        composition_eval([only], tmp_path / "o", fake.train, fake.score, fraction=1.0)
    assert fake.trials == []


def test_quick_eval_cli_rejects_an_unknown_protocol(tmp_path, capsys):
    from sailvl.cli import main

    source = _write(tmp_path / "a.jsonl", ["short", "mcq"])
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "data",
                "quick-eval",
                "tiny-sailvl",
                "--candidate",
                source["path"],
                "--bench",
                "x.tsv",
                "--protocol",
                "halves",
            ]
        )
    assert exit_info.value.code == 2
    assert "--protocol must be quality, composition or incremental" in capsys.readouterr().err
