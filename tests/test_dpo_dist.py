"""A DPO stage under FSDP2 on two CPU processes (torchrun, gloo) matches one process on the same global batch,
with the frozen-copy reference (full fine-tuning) and with the adapters-off reference (LoRA)."""

import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow

LORA = ["stages.0.trainable=[]", 'stages.0.lora={"r": 4, "alpha": 8, "targets": ["llm.*.self_attn.*_proj"]}']


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("dpo_dist_world")
    generate_world(root / "world", 40, 0, tasks="colour,shape", max_objects=1)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    return root


@pytest.mark.parametrize("variant", ["full", "lora"])
def test_fsdp_dpo_two_processes_match_one_process(world, tmp_path, variant):
    from sailvl.data.loader import build_loader
    from sailvl.model import set_trainable
    from sailvl.train import load_recipe
    from sailvl.train.dpo import DpoObjective, build_reference
    from sailvl.train.optim import build_optimizer, build_param_groups
    from sailvl.train.parallel import DistInfo
    from sailvl.train.start import resolve_start, start_model
    from sailvl.train.step import train_step

    # Constant LR and a large beta: the schedule cannot hide a difference, and the margins move within 5 steps;
    # tiny-dpo's sft_weight adds the chosen answers' NLL (normalised by the global chosen-token count).
    overrides = [
        f"vars.world={world / 'world'}", f"vars.model_dir={world / 'model'}", "stages.0.budget.steps=5",
        "stages.0.schedule=constant", "stages.0.warmup=0", "stages.0.lr=1e-3", "stages.0.dpo.beta=0.5",
        "data.packs_per_batch=1", "data.max_tokens=384",
    ] + (LORA if variant == "lora" else [])  # fmt: skip
    out = tmp_path / "fsdp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "sailvl.cli", "train", "tiny-dpo", *overrides, "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fsdp = {r["step"]: r for r in rows}

    recipe = load_recipe("tiny-dpo", overrides)
    stage = recipe.stages[0]
    torch.manual_seed(recipe.seed)
    started = start_model(recipe, resolve_start(recipe, tmp_path, stage), stage, DistInfo())
    model = started.model.train()
    set_trainable(model, stage.trainable)
    reference = build_reference(model, DistInfo(), torch.float32, False, None)
    assert (reference is None) == (variant == "lora")
    objective = DpoObjective(stage.dpo, reference)
    optimizer = build_optimizer(build_param_groups(model, stage.lr, stage.weight_decay), betas=stage.betas)
    data = recipe.stage_data_config(stage).model_copy(update={"preference_pairs": True})
    # The global batch of step k is rank 0's and rank 1's k-th batch: one process accumulates both.
    streams = [iter(build_loader(data, started.processor, rank, 2, recipe.seed)) for rank in range(2)]
    single, first_pair_loss = [], None
    for _ in range(5):
        micro = [next(s) for s in streams]
        result = train_step(
            model, optimizer, micro, DistInfo(), torch.float32, stage.grad_clip, objective=objective
        )
        single.append((result.loss, float(result.metrics_t["rewards/margin"]), result.grad_norm))
        first_pair_loss = first_pair_loss or float(result.metrics_t["dpo/loss"])
    assert [(fsdp[s]["loss"], fsdp[s]["rewards/margin"]) for s in range(1, 6)] == [
        pytest.approx(row[:2], abs=1e-5, rel=0) for row in single
    ]
    # AdamW hides a wrongly scaled gradient from the losses; the grad norm (before clipping, ~20) shows it.
    assert [fsdp[s]["grad_norm"] for s in range(1, 6)] == pytest.approx([row[2] for row in single], rel=1e-5)
    assert first_pair_loss == pytest.approx(0.693147, abs=1e-5)  # the reference is the start model
    assert single[-1][0] < single[0][0]
