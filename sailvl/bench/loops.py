"""Pieces shared by the `sailvl bench train` loops: a timed loop, the synthetic SFT mix, the padded HF step."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from sailvl.config import parse_config
from sailvl.data.config import DataConfig
from sailvl.synth import generate_world
from sailvl.train.step import to_device


class TimedLoop:
    """One training loop: a batch iterator and a step function, with time, counts and FLOPs accumulated.

    Each step reads `micro` batches (gradient accumulation) and calls `step_fn(batches)`; `flops_fn(batch) ->
    float` gives the model FLOPs of one micro-batch (`sailvl.train.flops`)."""

    def __init__(self, batches, step_fn, device: torch.device, flops_fn=None, micro: int = 1):
        self.batches, self.step_fn, self.device, self.flops_fn = batches, step_fn, device, flops_fn
        self.micro = micro
        self.seconds = self.load_seconds = self.flops = 0.0
        self.steps = self.real = self.padded = self.samples = self.targets = self.tiles = 0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def next_batches(self) -> list[dict]:
        """The micro-batches of one step."""
        return [next(self.batches) for _ in range(self.micro)]

    def warm_up(self) -> None:
        self.step_fn(self.next_batches())
        self._sync()

    def step(self) -> None:
        start = time.perf_counter()
        batches = self.next_batches()
        loaded = time.perf_counter()
        self.step_fn(batches)
        self._sync()
        end = time.perf_counter()
        self.seconds += end - start
        self.load_seconds += loaded - start
        self.steps += 1
        for batch in batches:
            self.real += int(batch["num_real_tokens"])
            self.padded += int(batch["input_ids"].numel())
            self.samples += len(batch["sample_ids"])
            self.tiles += 0 if batch.get("pixel_values") is None else int(batch["pixel_values"].shape[0])
            self.targets += int(batch["num_target_tokens"])
            if self.flops_fn is not None:
                self.flops += self.flops_fn(batch)

    def report(self, prefix: str, peak: float | None = None) -> dict:
        out = {
            f"{prefix}_tokens_per_s": round(self.real / self.seconds, 1),
            f"{prefix}_samples_per_s": round(self.samples / self.seconds, 2),
            f"{prefix}_tiles_per_s": round(self.tiles / self.seconds, 1),
            f"{prefix}_steps": self.steps,
            f"{prefix}_samples": self.samples,
            f"{prefix}_tokens": self.real,
            f"{prefix}_tiles": self.tiles,
            f"{prefix}_target_tokens": self.targets,
            f"{prefix}_padding_fraction": round(1.0 - self.real / max(self.padded, 1), 4),
            f"{prefix}_seconds": round(self.seconds, 4),
            f"{prefix}_load_s": round(self.load_seconds, 4),
        }
        if peak:
            out[f"{prefix}_mfu"] = round(self.flops / self.seconds / peak, 4)
        return out

    def tokens_per_s(self) -> float:
        return self.real / self.seconds


def bench_world(work: Path, cfg: dict) -> Path:
    """The synthetic world of the preset's image size (reused when present)."""
    world = work / ("world" if cfg["image_size"] == 112 else f"world-{cfg['image_size']}")
    if not (world / "sft.jsonl").is_file():
        generate_world(world, cfg["world_size"], 0, size=cfg["image_size"])
    return world


def realistic_configs(mix: DataConfig, cfg: dict, mask_format: str) -> tuple[DataConfig, DataConfig]:
    """The realistic mix's loader settings (`sailvl.bench.mix`: photos, 1-12 tiles, SFT-like lengths) at the
    bench's pack length, packs per batch, workers and kernel mask; the baseline pads `batch_size` samples."""
    common = {"num_workers": cfg["num_workers"]}
    packed = mix.model_copy(
        update={
            **common, "packing": True, "max_tokens": cfg["pack_tokens"], "packs_per_batch": cfg["packs_per_batch"],
            "attention_mask": mask_format,
        }
    )  # fmt: skip
    padded = mix.model_copy(
        update={**common, "packing": False, "batch_size": cfg["batch_size"], "max_tokens": cfg["pack_tokens"]}
    )
    return packed, padded


def data_configs(world: Path, cfg: dict, mask_format: str):
    # The SFT mix: short QA plus detailed captions, so sample lengths vary as in real SFT data.
    sources = [
        {"path": str(world / name), "image_root": str(world), "max_tiles": 1}
        for name in ("sft.jsonl", "pretrain.jsonl")
    ]
    common = {"sources": sources, "num_workers": cfg["num_workers"], "shuffle_block": 256}
    packed = {
        **common,
        "packing": True,
        "max_tokens": cfg["pack_tokens"],
        "packs_per_batch": cfg["packs_per_batch"],
        "attention_mask": mask_format,
    }
    padded = {**common, "packing": False, "batch_size": cfg["batch_size"]}
    return parse_config(DataConfig, packed), parse_config(DataConfig, padded)


def padded_hf_step(
    model, optimizer, device: torch.device, dtype: torch.dtype
) -> Callable[[list[dict]], None]:
    """The baseline's step: what a straightforward HF loop does with pad-to-longest batches (HF's mean loss over
    full logits, pads included in the matmuls, averaged over the micro-batches), autocast when `dtype` is not
    fp32, clip 1.0, optimizer step."""

    def step(batches: list[dict]) -> None:
        for batch in batches:
            inputs = to_device(batch, device, dtype)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                loss = model(**inputs, use_cache=False).loss
            (loss / len(batches)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step
