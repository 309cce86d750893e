"""A LoRA stage under FSDP2 on two CPU processes (torchrun, gloo) matches one process on the same global batch."""

import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("lora_dist_world")
    generate_world(root / "world", 60, 0)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    return root


def test_fsdp_lora_two_processes_match_one_process(world, tmp_path):
    from sailvl.data.loader import build_loader
    from sailvl.model import set_trainable
    from sailvl.train import load_recipe
    from sailvl.train.optim import build_optimizer, build_param_groups
    from sailvl.train.parallel import DistInfo
    from sailvl.train.start import resolve_start, start_model
    from sailvl.train.step import train_step

    # Adapters plus a fully trained projector, constant LR: the schedule cannot hide a gradient difference.
    overrides = [
        f"vars.world={world / 'world'}", f"vars.model_dir={world / 'model'}", "stages.0.budget.steps=8",
        "stages.0.schedule=constant", "stages.0.warmup=0", "stages.0.trainable=[projector.*]",
        "stages.0.data.packs_per_batch=1",
    ]  # fmt: skip
    out = tmp_path / "fsdp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "sailvl.cli", "train", "tiny-lora", *overrides, "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fsdp = {r["step"]: r["loss"] for r in rows}

    recipe = load_recipe("tiny-lora", overrides)
    stage = recipe.stages[0]
    torch.manual_seed(recipe.seed)
    started = start_model(recipe, resolve_start(recipe, tmp_path, stage), stage, DistInfo())
    model = started.model.train()
    set_trainable(model, stage.trainable)
    optimizer = build_optimizer(build_param_groups(model, stage.lr, stage.weight_decay), betas=stage.betas)
    data = recipe.stage_data_config(stage)
    # The global batch of step k is rank 0's and rank 1's k-th batch: one process accumulates both.
    streams = [iter(build_loader(data, started.processor, rank, 2, recipe.seed)) for rank in range(2)]
    single = []
    for _ in range(8):
        micro = [next(s) for s in streams]
        single.append(train_step(model, optimizer, micro, DistInfo(), torch.float32, stage.grad_clip).loss)
    assert [fsdp[s] for s in range(1, 9)] == pytest.approx(single, abs=1e-5, rel=0)
    assert single[-1] < single[0]
    assert (out / "lora" / "export" / "model.safetensors").is_file()
