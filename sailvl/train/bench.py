"""`sailvl bench train`: non-pad tokens/s of sailvl's packed loop vs a plain padded HF loop, same model and data.

Both loops train their own copy of the same tiny model (same initial weights, AdamW, same LR, fp32, grad clip 1.0,
one process) on the same synthetic SFT mix (the world's `sft.jsonl` short answers + `pretrain.jsonl` captions, so
sample lengths vary) read through `sailvl.data.build_loader` in the same stream order:

- sailvl: best-fit packed rows (`pack_tokens` long, `packs_per_batch` rows per step, block-diagonal attention)
  through `sailvl.train.step.train_step` (sum-CE / target count, logits only at target positions).
- baseline: pad-to-longest batches of `batch_size` samples, `model(**batch, labels=labels).loss.backward()`,
  `clip_grad_norm_`, `AdamW.step()` - what a straightforward HF loop does (logits at every position, pads included).

The defaults give both loops about the same number of samples per optimizer step (3 x 256-token packs hold ~8
samples of this mix, whose samples are 62-143 tokens; baseline batch 8). 256-token rows keep the O(L^2)
block-diagonal attention of a packed row small on CPU: measured on the 2-core dev box, 160-256-token rows gave
ratio ~1.3, 384 ~1.15, 512 ~1.05 (fuller packs do not pay for the masked-out attention). The loops are interleaved
step by step (the baseline catching up in samples after each sailvl step) so load from other processes hits both
alike; data loading is inside the timed region of both, and reported separately (`*_load_s`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from sailvl.train.parallel import DistInfo

PRESETS = {
    "tiny": {"world_size": 300, "steps": 60, "pack_tokens": 256, "packs_per_batch": 3, "batch_size": 8},
}

NOTES = (
    "non-pad tokens/s, one process, fp32, same model init, data stream, LR and ~samples/step; "
    "sailvl: {pack_tokens}-token best-fit packs x {packs_per_batch} per step (block-diagonal attention, logits "
    "only at targets); baseline: pad-to-longest batches of {batch_size} samples, HF loss over full logits; "
    "loops interleaved step by step; loading timed inside both; first step of each untimed (pack buffer fill)"
)


class _Loop:
    """One training loop: a batch iterator and a step function, with time and counts accumulated."""

    def __init__(self, batches, step_fn):
        self.batches, self.step_fn = batches, step_fn
        self.seconds = self.load_seconds = 0.0
        self.steps = self.real = self.padded = self.samples = self.targets = 0

    def warm_up(self) -> None:
        self.step_fn(next(self.batches))

    def step(self) -> None:
        start = time.perf_counter()
        batch = next(self.batches)
        loaded = time.perf_counter()
        self.step_fn(batch)
        end = time.perf_counter()
        self.seconds += end - start
        self.load_seconds += loaded - start
        self.steps += 1
        self.real += int(batch["num_real_tokens"])
        self.padded += int(batch["input_ids"].numel())
        self.samples += len(batch["sample_ids"])
        self.targets += int(batch["num_target_tokens"])

    def report(self, prefix: str) -> dict:
        return {
            f"{prefix}_tokens_per_s": round(self.real / self.seconds, 1),
            f"{prefix}_samples_per_s": round(self.samples / self.seconds, 2),
            f"{prefix}_steps": self.steps,
            f"{prefix}_samples": self.samples,
            f"{prefix}_tokens": self.real,
            f"{prefix}_target_tokens": self.targets,
            f"{prefix}_padding_fraction": round(1.0 - self.real / max(self.padded, 1), 4),
            f"{prefix}_seconds": round(self.seconds, 4),
            f"{prefix}_load_s": round(self.load_seconds, 4),
        }


def bench_train(
    preset: str = "tiny",
    steps: int | None = None,
    work_dir: str | Path | None = None,
    pack_tokens: int | None = None,
    packs_per_batch: int | None = None,
    batch_size: int | None = None,
) -> dict:
    """Train the same tiny model on the synthetic SFT mix with both loops; report non-pad tokens/s of each.

    `steps` is sailvl's optimizer steps (the baseline steps in step with it until it has seen as many samples);
    `pack_tokens`, `packs_per_batch`, `batch_size` override the preset. The world and model are generated in
    `work_dir` (reused when present) or a temporary directory. Returns a JSON-safe dict; `ratio` is sailvl's
    tokens/s over the baseline's.
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
    cfg = dict(PRESETS[preset])
    for key, value in (
        ("pack_tokens", pack_tokens),
        ("packs_per_batch", packs_per_batch),
        ("batch_size", batch_size),
    ):
        if value is not None:
            if value < 1:
                raise SailvlError(f"--{key.replace('_', '-')} must be positive, got {value}")
            cfg[key] = value
    steps = steps or cfg["steps"]
    if steps < 1:
        raise SailvlError(f"--steps must be positive, got {steps}")
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory()
        work_dir = tmp.name
    work = Path(work_dir)
    try:
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
        packed = parse_config(
            DataConfig,
            {
                **common,
                "packing": True,
                "max_tokens": cfg["pack_tokens"],
                "packs_per_batch": cfg["packs_per_batch"],
            },
        )
        padded = parse_config(DataConfig, {**common, "packing": False, "batch_size": cfg["batch_size"]})
        info = DistInfo()

        sail_model = load_model(work / "model", dtype=torch.float32).train()
        sail_opt = torch.optim.AdamW(sail_model.parameters(), lr=1e-3)
        hf_model = load_model(work / "model", dtype=torch.float32).train()
        hf_opt = torch.optim.AdamW(hf_model.parameters(), lr=1e-3)

        def hf_step(batch):
            inputs = to_device(batch, info.device, torch.float32)
            loss = hf_model(**inputs, use_cache=False).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(hf_model.parameters(), 1.0)
            hf_opt.step()
            hf_opt.zero_grad(set_to_none=True)

        sail = _Loop(
            iter(build_loader(packed, processor)),
            lambda b: train_step(sail_model, sail_opt, [b], info, torch.float32, 1.0),
        )
        hf = _Loop(iter(build_loader(padded, processor)), hf_step)
        torch.manual_seed(0)
        sail.warm_up()
        hf.warm_up()
        for _ in range(steps):
            sail.step()
            # The baseline keeps pace in samples, so both loops train on the same number of samples.
            while hf.samples + cfg["batch_size"] / 2 <= sail.samples:
                hf.step()
    finally:
        if tmp is not None:
            tmp.cleanup()
    result = {"preset": preset, "device": str(info.device), "threads": torch.get_num_threads()}
    result.update(sail.report("sailvl"))
    hf_report = hf.report("hf_padded")
    result.update(hf_report)
    result["ratio"] = round((sail.real / sail.seconds) / (hf.real / hf.seconds), 3)
    result.update({k: cfg[k] for k in ("pack_tokens", "packs_per_batch", "batch_size")})
    result["notes"] = NOTES.format(**cfg)
    return result
