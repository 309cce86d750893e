"""A run SIGKILLed while writing a checkpoint resumes from the previous complete one and ends with the same weights."""

import os
import signal
import subprocess
import sys

import pytest
import torch

# Runs `sailvl train ...` and kills itself inside CheckpointManager.save of step KILL_STEP: the DCP shards and
# .metadata are on disk, trainer_state.json and the rename to step-N are not (a torn checkpoint).
KILLER = """
import os, signal, sys
import sailvl.train.checkpoint as checkpoint

real = checkpoint.write_trainer_state

def write_or_die(path, trainer):
    if trainer["step"] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, trainer)

checkpoint.write_trainer_state = write_or_die
from sailvl.cli import main
main(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("torn_world")
    generate_world(root / "world", 40, 0)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    return root


def test_kill_during_checkpoint_save_resumes_from_the_previous_one(world, tmp_path):
    from sailvl.model import load_model
    from sailvl.train import load_recipe
    from sailvl.train.checkpoint import latest_checkpoint, read_trainer_state
    from sailvl.train.trainer import train_recipe

    overrides = [
        f"vars.world={world / 'world'}", f"vars.model_dir={world / 'model'}", "stages.0.budget.steps=6",
        "stages.0.save_every=2", "stages.0.keep_last=5",
    ]  # fmt: skip
    stage = "warmup-adaptation"
    cut = tmp_path / "cut"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    cmd = [
        sys.executable,
        str(script),
        "4",
        "train",
        "tiny-sailvit",
        *overrides,
        "--stage",
        stage,
        "--out",
        str(cut),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    checkpoints = cut / stage / "checkpoints"
    assert (checkpoints / ".tmp-step-0000004" / ".metadata").is_file()
    assert not (checkpoints / "step-0000004").exists()
    assert latest_checkpoint(checkpoints) == checkpoints / "step-0000002"

    (resumed,) = train_recipe(load_recipe("tiny-sailvit", overrides), cut, stage=stage, resume="auto")
    (full,) = train_recipe(load_recipe("tiny-sailvit", overrides), tmp_path / "full", stage=stage)
    assert read_trainer_state(resumed) == read_trainer_state(full)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-0000002", "step-0000004", "step-0000006"]
    a, b = load_model(full).state_dict(), load_model(resumed).state_dict()
    for name, tensor in a.items():
        assert torch.allclose(tensor, b[name], atol=1e-6, rtol=0), name
