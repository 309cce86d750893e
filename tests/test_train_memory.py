"""Memory-frugal start on 2 CPU ranks: only rank 0 reads the weights; peak RSS per rank, losses, tied embeddings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

# Wraps the trainer's stage start to record this rank's peak RSS (MB) before the model is built and after the
# weights reached the shards, and whether the tied embedding is still one sharded parameter after training.
DRIVER = """
import json, os, resource, sys
import sailvl.train.trainer as trainer

record, held = {}, {}
start_model, load_full_state = trainer.start_model, trainer.load_full_state

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def measured_start(*args, **kwargs):
    record["before_mb"] = peak_mb()
    return start_model(*args, **kwargs)

def measured_load(model, state, info):
    load_full_state(model, state, info)
    record["after_mb"] = peak_mb()
    held["model"] = model

trainer.start_model, trainer.load_full_state = measured_start, measured_load
from sailvl.cli import main
main(sys.argv[2:])
model = held["model"]
embed = model.model.language_model.embed_tokens.weight
record["tied"] = model.lm_head.weight is embed
record["sharded"] = type(embed).__name__ == "DTensor" and embed.to_local().shape[0] < embed.shape[0]
with open(os.path.join(sys.argv[1], f"rss-rank{os.environ['RANK']}.json"), "w") as fh:
    json.dump(record, fh)
"""
RUN = [
    "stages.0.budget.steps=2",
    "stages.0.schedule=constant",
    "stages.0.warmup=0",
    "stages.0.trainable=['*']",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A ~32M-parameter model (~125 MB fp32, tied embeddings) saved whole and as vision + LLM parts."""
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model, save_model
    from sailvl.model.build import build_from_config
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir
    from sailvl.train.export import export_llm, export_vit

    root = tmp_path_factory.mktemp("memory")
    generate_world(root / "world", 40, 0)
    make_tiny_model_dir(root / "world", root / "tiny", seed=0)
    config = load_model(root / "tiny").config
    text = config.text_config
    # Many mid-sized tensors: rank 1's share is its half plus the largest one (4 MB) in flight.
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = 512, 2048, 8
    text.num_attention_heads, text.num_key_value_heads, text.head_dim = 8, 4, 64
    text.layer_types = ["full_attention"] * 8
    model = build_from_config(config, seed=0)
    save_model(model, root / "big")
    SailVLProcessor.from_pretrained(root / "tiny").save_pretrained(root / "big")
    export_vit(root / "big", root / "vision")
    export_llm(root / "big", root / "llm")
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return root, size_mb


def _torchrun(root: Path, out: Path, *overrides: str) -> dict[int, dict]:
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver),
        str(out), "train", "tiny-sailvit", f"vars.world={root / 'world'}", "data.max_tokens=256", *RUN,
        *overrides, "--stage", "warmup-adaptation", "--out", str(out),
    ]  # fmt: skip
    out.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    errors = [line for line in done.stderr.splitlines() if line.startswith(("error:", "Traceback"))]
    assert done.returncode == 0, (errors, done.stderr[-3000:])
    return {rank: json.loads((out / f"rss-rank{rank}.json").read_text()) for rank in (0, 1)}


def _one_process_losses(root: Path, model) -> list[float]:
    """The same two global batches in one process: rank 0's and rank 1's batch accumulated per step."""
    from sailvl.data.loader import build_loader
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import set_trainable
    from sailvl.train import load_recipe
    from sailvl.train.optim import build_optimizer, build_param_groups
    from sailvl.train.parallel import DistInfo
    from sailvl.train.step import train_step

    recipe = load_recipe(
        "tiny-sailvit",
        [f"vars.world={root / 'world'}", f"vars.model_dir={root / 'big'}", "data.max_tokens=256", *RUN],
    )
    stage = recipe.stages[0]
    model.train()
    set_trainable(model, stage.trainable)
    optimizer = build_optimizer(build_param_groups(model, stage.lr, stage.weight_decay), betas=stage.betas)
    data = recipe.stage_data_config(stage)
    processor = SailVLProcessor.from_pretrained(root / "big")
    streams = [iter(build_loader(data, processor, rank, 2, recipe.seed)) for rank in range(2)]
    losses = []
    for _ in range(2):
        micro = [next(s) for s in streams]
        losses.append(train_step(model, optimizer, micro, DistInfo(), torch.float32, stage.grad_clip).loss)
    return losses


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows]


def _write_figures(root: Path, kind: str, rss: dict, size_mb: float) -> None:
    # The figures BENCHMARKS.md quotes: print with `pytest -s tests/test_train_memory.py`.
    rows = {r: round(v["after_mb"] - v["before_mb"], 1) for r, v in rss.items()}
    print(
        f"\n{kind}: model {size_mb:.0f} MB fp32; peak RSS growth at start, rank 0 {rows[0]} MB, rank 1 {rows[1]} MB"
    )


def test_start_from_export_on_two_ranks(models, tmp_path):
    from sailvl.model import load_model

    root, size_mb = models
    out = tmp_path / "export"
    rss = _torchrun(root, out, f"vars.model_dir={root / 'big'}")
    _write_figures(root, "from export", rss, size_mb)
    growth = {rank: r["after_mb"] - r["before_mb"] for rank, r in rss.items()}
    assert growth[0] > 0.9 * size_mb  # rank 0 read the whole model: the measurement sees a full copy
    assert growth[1] < 0.7 * size_mb  # rank 1: its half of the shards plus one tensor in flight
    assert all(r["tied"] and r["sharded"] for r in rss.values())
    assert _losses(out) == pytest.approx(_one_process_losses(root, load_model(root / "big")), abs=1e-5)
    export = load_model(out / "warmup-adaptation" / "export")
    assert export.lm_head.weight is export.model.language_model.embed_tokens.weight


def test_start_from_parts_on_two_ranks(models, tmp_path):
    from sailvl.model import build_from_parts

    root, size_mb = models
    parts = [
        "model.path=null", f"model.vision={root / 'vision'}", f"model.llm={root / 'llm'}",
        f"model.processor={root / 'big'}",
    ]  # fmt: skip
    out = tmp_path / "parts"
    rss = _torchrun(root, out, *parts)
    _write_figures(root, "from parts", rss, size_mb)
    growth = {rank: r["after_mb"] - r["before_mb"] for rank, r in rss.items()}
    assert growth[0] > 0.9 * size_mb
    assert growth[1] < 0.7 * size_mb
    assert all(r["tied"] and r["sharded"] for r in rss.values())
    torch.manual_seed(0)  # the recipe seed, as the trainer's rank 0 seeds the fresh projector
    model, _ = build_from_parts(root / "vision", root / "llm")
    assert _losses(out) == pytest.approx(_one_process_losses(root, model), abs=1e-5)
