"""Quick-eval protocols with fake training/scoring: ranking, keep/drop, trial caching; scaling-fit CLI."""

from __future__ import annotations

import json
import math

import pytest

from sailvl.errors import SailvlError
from sailvl.eval.fingerprint import Digests
from sailvl.eval.quick_eval import incremental_eval, quality_eval, recipe_trainer, source_entry

QUALITY = {"good": 60.0, "noisy": 30.0, "ok": 45.0}


class FakeTraining:
    """Training on a mixture 'scores' the mean quality of its sources; records every trial run."""

    def __init__(self):
        self.trained: list[list[str]] = []

    def train(self, sources, trial_dir):
        self.trained.append([s["name"] for s in sources])
        (trial_dir / "export").mkdir()
        (trial_dir / "export" / "mix.json").write_text(json.dumps([s["name"] for s in sources]))
        return trial_dir / "export"

    def score(self, export, trial_dir):
        names = json.loads((export / "mix.json").read_text())
        return sum(QUALITY[n] for n in names) / len(names)


def _candidates(tmp_path, names):
    out = []
    for name in names:
        (tmp_path / f"{name}.jsonl").write_text("{}\n")
        out.append(source_entry(tmp_path / f"{name}.jsonl"))
    return out


def test_quality_eval_ranks_and_caches_trials(tmp_path):
    fake = FakeTraining()
    candidates = _candidates(tmp_path, ["noisy", "good", "ok"])
    report = quality_eval(candidates, tmp_path / "q", fake.train, fake.score)
    assert [r["source"] for r in report["ranking"]] == ["good", "ok", "noisy"]
    assert fake.trained == [["noisy"], ["good"], ["ok"]]
    again = quality_eval(candidates, tmp_path / "q", fake.train, fake.score)
    assert again == report and len(fake.trained) == 3  # finished trials are not retrained
    assert json.loads((tmp_path / "q" / "quick_eval.json").read_text()) == report


def test_incremental_eval_keeps_only_candidates_that_hold_the_score(tmp_path):
    fake = FakeTraining()
    base = _candidates(tmp_path, ["ok"])
    report = incremental_eval(
        base, _candidates(tmp_path, ["good", "noisy"]), tmp_path / "i", fake.train, fake.score
    )
    assert report["kept"] == ["ok", "good"]  # adding noisy data lowers the score: dropped
    assert [s["kept"] for s in report["steps"]] == [True, False]
    assert report["final_score"] == pytest.approx(52.5)
    assert fake.trained == [["ok"], ["ok", "good"], ["ok", "good", "noisy"]]


def test_source_entry_missing_file(tmp_path):
    from sailvl.errors import SailvlError

    with pytest.raises(SailvlError, match="does not exist"):
        source_entry(tmp_path / "nope.jsonl")


def test_scaling_fit_cli(tmp_path, capsys):
    from sailvl.cli import main

    paths = []
    for i, tokens in enumerate([1e4, 1e5, 1e6]):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps({"tokens_seen": tokens, "average": 2.0 + 4.0 * math.log(tokens)}))
        paths.append(str(path))
    main(["scaling", "fit", *paths, "--x", "tokens", "--target", "1e12", "--out", str(tmp_path / "f.png")])
    out = capsys.readouterr().out
    fit = json.loads(out.strip().splitlines()[-1])
    assert fit["a"] == pytest.approx(2.0) and fit["b"] == pytest.approx(4.0)
    assert (tmp_path / "f.png").stat().st_size > 1000


def _fingerprinted(fake, settings):
    """FakeTraining's functions carrying a fingerprint of `settings` (as recipe_trainer's carries its recipe)."""

    def train(sources, trial_dir):
        return fake.train(sources, trial_dir)

    def score(export, trial_dir):
        return fake.score(export, trial_dir)

    train.fingerprint = lambda digests: dict(settings)
    return train, score


def test_trials_with_other_data_or_settings_are_never_reused(tmp_path):
    fake = FakeTraining()
    candidates = _candidates(tmp_path, ["good", "ok"])
    settings = {"samples": 100}
    report = quality_eval(candidates, tmp_path / "q", *_fingerprinted(fake, settings))
    assert quality_eval(candidates, tmp_path / "q", *_fingerprinted(fake, settings)) == report
    assert len(fake.trained) == 2  # the same settings: both trials read back
    with pytest.raises(
        SailvlError,
        match="trial quality-good results in .* made with train samples=100; this run has train samples=200",
    ):
        quality_eval(candidates, tmp_path / "q", *_fingerprinted(fake, {"samples": 200}))
    with (tmp_path / "good.jsonl").open("a") as handle:
        handle.write("{}\n")  # records appended to a candidate
    with pytest.raises(SailvlError, match="trial quality-good results .* made with sources good="):
        quality_eval(candidates, tmp_path / "q", *_fingerprinted(fake, settings))
    assert len(fake.trained) == 2


def test_recipe_trainer_fingerprints_the_trial_recipe_and_its_starting_weights(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    overrides = [f"vars.model_dir={model}", f"vars.world={tmp_path}"]
    digests = Digests()
    one = recipe_trainer("tiny-sailvl", overrides, None, 10).fingerprint(digests)
    assert one == recipe_trainer("tiny-sailvl", overrides, None, 10).fingerprint(digests)
    assert one != recipe_trainer("tiny-sailvl", overrides, None, 20).fingerprint(digests)
    assert one != recipe_trainer("tiny-sailvl", overrides, "sft-knowledge", 10).fingerprint(digests)
    (model / "model.safetensors").write_bytes(b"retrain")
    assert one != recipe_trainer("tiny-sailvl", overrides, None, 10).fingerprint(digests)
