"""Optimizer parameter groups per module glob, and LR schedules (cosine, constant, warmup-stable-decay)."""

from __future__ import annotations

import math
from collections.abc import Callable
from fnmatch import fnmatchcase

import torch
from torch import nn

from sailvl.errors import ConfigError
from sailvl.model.params import module_alias


def _no_decay(name: str, param: torch.Tensor) -> bool:
    # Biases, norms, layer-scales and embeddings-like vectors are not decayed (standard AdamW practice).
    return param.ndim < 2 or name.endswith(".bias")


def build_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    lr_groups: dict[str, float] | None = None,
    alias: Callable[[str], str] = module_alias,
) -> list[dict]:
    """AdamW groups over trainable parameters only, keyed by (LR glob, decay/no-decay).

    `lr_groups` maps globs over alias names (`vision.*`, `vision.encoder.layer.11.*`) to a peak LR (1/step);
    the first matching glob wins and unmatched parameters get `lr`. Each group carries `name` (the glob or
    `default`, with `/no_decay`) and `peak_lr`, which the schedule scales. Frozen parameters are left out,
    so they get no optimizer state.
    """
    lr_groups = lr_groups or {}
    buckets: dict[tuple[str, bool], list[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        alias_name = alias(name)
        glob = next((g for g in lr_groups if fnmatchcase(alias_name, g)), "default")
        buckets.setdefault((glob, _no_decay(name, param)), []).append(param)
    if not buckets:
        raise ConfigError("no trainable parameters: the stage's `trainable` globs match nothing")
    groups = []
    for (glob, no_decay), params in buckets.items():
        peak = lr_groups.get(glob, lr)
        groups.append(
            {
                "params": params,
                "lr": peak,
                "peak_lr": peak,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "name": glob + ("/no_decay" if no_decay else ""),
            }
        )
    return groups


def build_optimizer(
    groups: list[dict], betas: tuple[float, float] = (0.9, 0.999), fused: bool = False
) -> torch.optim.Optimizer:
    """AdamW over `groups`: single-tensor (exact, FSDP2 DTensors and plain tensors alike) or `fused` (one kernel
    per step; `sailvl.train.step.train_step(sync=False)` needs it for its on-device skip)."""
    if fused:
        return torch.optim.AdamW(groups, betas=betas, eps=1e-8, fused=True)
    return torch.optim.AdamW(groups, betas=betas, eps=1e-8, foreach=False)


def budget_progress(budget, state: dict) -> float:
    """Fraction of a stage's `Budget` done (the largest of its steps / samples / tokens fractions). Budgets count
    the stage only (`stage_*`); `tokens_seen` / `samples_seen` run across stages."""
    fractions = [0.0]
    if budget.steps:
        fractions.append(state["step"] / budget.steps)
    if budget.samples:
        fractions.append(state["stage_samples_seen"] / budget.samples)
    if budget.tokens:
        fractions.append(state["stage_tokens_seen"] / budget.tokens)
    return max(fractions)


def lr_factor(
    progress: float,
    schedule: str,
    warmup: float,
    min_lr_ratio: float = 0.0,
    decay_fraction: float = 0.1,
) -> float:
    """Multiplier of the peak LR at `progress` in [0, 1] of the stage budget.

    Linear warm-up over the first `warmup` fraction (starting above zero so step 0 trains), then
    `cosine` to `min_lr_ratio`, `constant`, or `wsd` (flat, then linear decay over the last `decay_fraction`).
    """
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return max(progress / warmup, 1e-3)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        t = (progress - warmup) / max(1.0 - warmup, 1e-12)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "wsd":
        start = 1.0 - decay_fraction
        if progress <= start:
            return 1.0
        t = (progress - start) / decay_fraction
        return 1.0 - (1.0 - min_lr_ratio) * t
    raise ConfigError(f"unknown schedule {schedule!r}; expected cosine, constant or wsd")


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> dict[str, float]:
    """Scale each group's `peak_lr` by `factor`; returns {group name: lr} for logging."""
    lrs = {}
    for group in optimizer.param_groups:
        group["lr"] = group["peak_lr"] * factor
        lrs[group["name"]] = group["lr"]
    return lrs


def set_stage_lr(optimizer: torch.optim.Optimizer, stage, state: dict) -> dict[str, float]:
    """Set every group's LR for where `stage` (a `StageConfig`) stands in its budget (`budget_progress`), by its
    schedule; returns the LRs set (`set_lr`). The one schedule rule of every training loop."""
    factor = lr_factor(
        budget_progress(stage.budget, state),
        stage.schedule,
        stage.warmup,
        stage.min_lr_ratio,
        stage.decay_fraction,
    )
    return set_lr(optimizer, factor)
