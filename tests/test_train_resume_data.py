"""Training resume checks the stage's data: a checkpoint made on other data is refused unless
--resume-ignore-data is passed; an unchanged recipe resumes as before."""

from __future__ import annotations

import shutil

import pytest

from sailvl.errors import SailvlError

STAGE = "warmup-adaptation"


@pytest.mark.slow  # four short trainings: ~45 s on 2 shared cores
def test_resume_on_changed_data_is_refused_unless_told(tmp_path):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir
    from sailvl.train import load_recipe
    from sailvl.train.checkpoint import read_trainer_state
    from sailvl.train.trainer import train_recipe

    generate_world(tmp_path / "world", 24, 0)
    make_tiny_model_dir(tmp_path / "world", tmp_path / "model", seed=0)
    overrides = [f"vars.world={tmp_path / 'world'}", f"vars.model_dir={tmp_path / 'model'}"]
    overrides += ["stages.0.budget.steps=2", "stages.0.save_every=1", "stages.0.keep_last=5"]
    run = tmp_path / "run"
    (full,) = train_recipe(load_recipe("tiny-sailvit", overrides), run, stage=STAGE)
    with pytest.raises(SailvlError, match="--resume-ignore-data needs --resume"):
        train_recipe(load_recipe("tiny-sailvit", overrides), run, stage=STAGE, resume_ignore_data=True)

    def cut() -> None:  # as if killed after step 1
        shutil.rmtree(run / STAGE / "export")
        shutil.rmtree(run / STAGE / "checkpoints" / "step-0000002")

    cut()
    (resumed,) = train_recipe(load_recipe("tiny-sailvit", overrides), run, stage=STAGE, resume="auto")
    assert read_trainer_state(resumed) == read_trainer_state(
        full
    )  # the same recipe and data resume as before
    cut()
    longer = load_recipe("tiny-sailvit", [*overrides, "data.max_tokens=640"])
    with pytest.raises(SailvlError, match=r"pack length \(max_tokens\) 512; it is now 640"):
        train_recipe(longer, run, stage=STAGE, resume="auto")
    (forced,) = train_recipe(longer, run, stage=STAGE, resume="auto", resume_ignore_data=True)
    assert read_trainer_state(forced)["step"] == 2
