"""One clock: tokens/samples accumulate across stages in exports, checkpoints and metrics; scaling fit reads it."""

import json
import shutil

import pytest

STEPS = ["stages.0.budget.steps=2", "stages.1.budget.steps=2", "stages.2.budget.steps=2"]
SAVES = ["stages.2.save_every=1", "stages.2.keep_last=5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """tiny-sailvit's three stages, two steps each, stage III checkpointed every step."""
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir
    from sailvl.train import load_recipe
    from sailvl.train.trainer import train_recipe

    root = tmp_path_factory.mktemp("clock")
    generate_world(root / "world", 40, 0)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    overrides = [f"vars.world={root / 'world'}", f"vars.model_dir={root / 'model'}", *STEPS, *SAVES]
    exports = train_recipe(load_recipe("tiny-sailvit", overrides), root / "run")
    return root, overrides, exports


def test_exports_and_metrics_carry_the_cumulative_clock(run):
    from sailvl.train.checkpoint import read_trainer_state

    root, _, exports = run
    states = [read_trainer_state(e) for e in exports]
    for key in ("tokens_seen", "samples_seen"):
        stage_counts = [s[f"stage_{key}"] for s in states]
        assert all(c > 0 for c in stage_counts)
        assert [s[key] for s in states] == [sum(stage_counts[: i + 1]) for i in range(3)]
    assert [s["step"] for s in states] == [2, 2, 2]
    assert [s["global_step"] for s in states] == [2, 4, 6]
    rows = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[2]["tokens_seen"] == states[0]["tokens_seen"] + rows[2]["stage_tokens_seen"]
    assert rows[-1]["tokens_seen"] == states[-1]["tokens_seen"]


def test_scaling_fit_over_the_stage_exports_uses_the_cumulative_clock(run, capsys):
    from sailvl.cli import main
    from sailvl.eval.model_eval import evaluate_model
    from sailvl.train.checkpoint import read_trainer_state

    root, _, exports = run
    results = []
    for export in exports:
        out = root / "eval" / export.parent.name
        evaluate_model(export, [str(root / "world" / "bench" / "synth_vqa.tsv")], out, limit=4, batch_size=4)
        results.append(out / "results.json")
        assert json.loads(results[-1].read_text())["tokens_seen"] == read_trainer_state(export)["tokens_seen"]
    main(["scaling", "fit", *map(str, results), "--out", str(root / "fit.png")])
    out = capsys.readouterr().out
    fit = json.loads(out.strip().splitlines()[-1])
    assert fit["n"] == 3 and "ln(tokens)" in out and (root / "fit.png").is_file()


def test_resume_mid_stage_keeps_the_clock(run, tmp_path):
    from sailvl.train import load_recipe
    from sailvl.train.checkpoint import read_trainer_state
    from sailvl.train.trainer import train_recipe

    root, overrides, exports = run
    part = tmp_path / "part"
    shutil.copytree(root / "run", part)
    shutil.rmtree(part / "world-knowledge" / "export")
    shutil.rmtree(part / "world-knowledge" / "checkpoints" / "step-0000002")
    mid = read_trainer_state(part / "world-knowledge" / "checkpoints" / "step-0000001")
    assert mid["step"] == 1 and mid["global_step"] == 5
    assert mid["tokens_seen"] == read_trainer_state(exports[1])["tokens_seen"] + mid["stage_tokens_seen"]
    (resumed,) = train_recipe(load_recipe("tiny-sailvit", overrides), part, "world-knowledge", "auto")
    assert read_trainer_state(resumed) == read_trainer_state(exports[2])


def test_a_checkpoint_from_before_the_clock_resumes_onto_it():
    from sailvl.train.trainer import _upgrade_state

    state = {"stage": "b", "step": 3, "tokens_seen": 300, "samples_seen": 30, "bad_steps": 0}
    _upgrade_state(state, {"tokens_seen": 1000, "samples_seen": 100, "global_step": 10})
    assert state["tokens_seen"] == 1300 and state["stage_tokens_seen"] == 300
    assert state["samples_seen"] == 130 and state["stage_samples_seen"] == 30 and state["global_step"] == 13
