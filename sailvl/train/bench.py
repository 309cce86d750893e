"""`sailvl bench train`: non-pad tokens/s of sailvl's packed loop vs a plain padded HF loop, same model and data."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from sailvl.train.parallel import DistInfo

PRESETS = {"tiny": {"world_size": 300, "steps": 30, "pack_tokens": 512, "batch_size": 8}}


def _timed(batches, step_fn, steps: int) -> tuple[float, int]:
    """Seconds and non-pad tokens over `steps` steps, after one untimed warm-up step (loading included)."""
    step_fn(next(batches))
    tokens, start = 0, time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        step_fn(batch)
        tokens += int(batch["num_real_tokens"])
    return time.perf_counter() - start, tokens


def bench_train(preset: str = "tiny", steps: int | None = None, work_dir: str | Path | None = None) -> dict:
    """Train the same tiny model on the synthetic SFT mix twice and report non-pad tokens/s of each loop.

    sailvl: best-fit packed rows (block-diagonal attention) through `train_step` (sum-CE / target count).
    baseline: pad-to-longest batches of `batch_size` samples, `model(**batch, labels=...).loss.backward()`.
    Both use AdamW at the same LR, fp32, all modules trainable, one process.
    """
    from sailvl.config import parse_config
    from sailvl.data.config import DataConfig
    from sailvl.data.loader import build_loader
    from sailvl.data.processor import SailVLProcessor
    from sailvl.errors import SailvlError
    from sailvl.model import load_model
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir
    from sailvl.train.step import to_device, train_step

    if preset not in PRESETS:
        raise SailvlError(f"unknown bench preset {preset!r}; presets: {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    steps = steps or cfg["steps"]
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory()
        work_dir = tmp.name
    work = Path(work_dir)
    if not (work / "world" / "sft.jsonl").is_file():
        generate_world(work / "world", cfg["world_size"], 0)
    if not (work / "model" / "config.json").is_file():
        make_tiny_model_dir(work / "world", work / "model", seed=0)
    processor = SailVLProcessor.from_pretrained(work / "model")
    # The SFT mix: short QA plus detailed captions, so sample lengths vary as in real SFT data.
    sources = [
        {"path": str(work / "world" / name), "image_root": str(work / "world"), "max_tiles": 1}
        for name in ("sft.jsonl", "pretrain.jsonl")
    ]
    common = {"sources": sources, "num_workers": 0, "shuffle_block": 256}
    packed = parse_config(DataConfig, {**common, "packing": True, "max_tokens": cfg["pack_tokens"]})
    padded = parse_config(DataConfig, {**common, "packing": False, "batch_size": cfg["batch_size"]})
    info = DistInfo()

    torch.manual_seed(0)
    model = load_model(work / "model", dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sail_s, sail_tokens = _timed(
        iter(build_loader(packed, processor)),
        lambda b: train_step(model, opt, [b], info, torch.float32, 1.0),
        steps,
    )

    model = load_model(work / "model", dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def hf_step(batch):
        inputs = to_device(batch, info.device, torch.float32)
        loss = model(**inputs, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    # Same number of samples as the packed loop saw, in batch_size-sample steps.
    hf_steps = max(1, round(steps * _samples_per_pack(packed, processor) / cfg["batch_size"]))
    hf_s, hf_tokens = _timed(iter(build_loader(padded, processor)), hf_step, hf_steps)
    if tmp is not None:
        tmp.cleanup()
    sail_tps, hf_tps = sail_tokens / sail_s, hf_tokens / hf_s
    return {
        "preset": preset,
        "device": str(info.device),
        "sailvl_tokens_per_s": round(sail_tps, 1),
        "hf_padded_tokens_per_s": round(hf_tps, 1),
        "ratio": round(sail_tps / hf_tps, 3),
        "sailvl_steps": steps,
        "hf_steps": hf_steps,
        "sailvl_tokens": sail_tokens,
        "hf_tokens": hf_tokens,
    }


def _samples_per_pack(config, processor, probe: int = 5) -> float:
    from sailvl.data.loader import build_loader

    batches = iter(build_loader(config, processor))
    return sum(len(next(batches)["sample_ids"]) for _ in range(probe)) / probe
