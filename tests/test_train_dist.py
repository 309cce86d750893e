"""Two-process CPU runs under torchrun (gloo, FSDP2): losses match one process, kill -9 + resume is exact."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("dist_world")
    generate_world(root / "world", 80, 0)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    return root


def _torchrun(world: Path, out: Path, *args: str, background: bool = False):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "sailvl.cli", "train", "tiny-sailvit", f"vars.world={world / 'world'}",
        f"vars.model_dir={world / 'model'}", *args, "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if background:
        return subprocess.Popen(
            cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def test_fsdp_two_processes_match_one_process_on_the_same_global_batch(world, tmp_path):
    from sailvl.config import parse_config
    from sailvl.data.config import DataConfig
    from sailvl.data.loader import build_loader
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model, set_trainable
    from sailvl.train import load_recipe
    from sailvl.train.optim import build_optimizer, build_param_groups
    from sailvl.train.parallel import DistInfo
    from sailvl.train.step import train_step

    # All modules trainable, constant LR: the schedule cannot hide a gradient difference.
    overrides = [
        "stages.2.init_from=model", "stages.2.budget.steps=10", "stages.2.schedule=constant",
        "stages.2.warmup=0", "stages.2.save_every=0",
    ]  # fmt: skip
    out = tmp_path / "fsdp"
    _torchrun(world, out, *overrides, "--stage", "world-knowledge")
    fsdp = _losses(out)

    recipe = load_recipe(
        "tiny-sailvit", [f"vars.world={world / 'world'}", f"vars.model_dir={world / 'model'}", *overrides]
    )
    stage = recipe.stages[2]
    torch.manual_seed(recipe.seed + 2)
    model = load_model(world / "model", dtype=torch.float32).train()
    processor = SailVLProcessor.from_pretrained(world / "model")
    set_trainable(model, stage.trainable)
    optimizer = build_optimizer(build_param_groups(model, stage.lr, stage.weight_decay), betas=stage.betas)
    data = parse_config(DataConfig, recipe.stage_data(stage))
    # The global batch of step k is rank 0's and rank 1's k-th batch: one process accumulates both.
    streams = [iter(build_loader(data, processor, rank, 2, recipe.seed + 2)) for rank in range(2)]
    single = []
    for _ in range(10):
        micro = [next(s) for s in streams]
        single.append(train_step(model, optimizer, micro, DistInfo(), torch.float32, stage.grad_clip).loss)
    assert [fsdp[s] for s in range(1, 11)] == pytest.approx(single, abs=1e-5, rel=0)
    assert single[-1] < single[0]


def test_kill_and_resume_auto_is_exact(world, tmp_path):
    from transformers import AutoModelForImageTextToText

    overrides = ["stages.0.budget.steps=20", "stages.0.save_every=10", "stages.0.keep_last=5"]
    stage = ["--stage", "warmup-adaptation"]
    full = tmp_path / "full"
    _torchrun(world, full, *overrides, *stage)

    cut = tmp_path / "cut"
    proc = _torchrun(world, cut, *overrides, *stage, background=True)
    ckpt = cut / "warmup-adaptation" / "checkpoints" / "step-0000010"
    deadline = time.time() + 240
    while not (ckpt / "trainer_state.json").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint at step 10"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "warmup-adaptation" / "export").exists(), "the run finished before it could be killed"
    _torchrun(world, cut, *overrides, *stage, "--resume", "auto")

    assert _losses(cut) == pytest.approx(_losses(full), abs=1e-6)
    a = AutoModelForImageTextToText.from_pretrained(full / "warmup-adaptation" / "export")
    b = AutoModelForImageTextToText.from_pretrained(cut / "warmup-adaptation" / "export")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6, rtol=0), name
