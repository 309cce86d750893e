"""The one training loop: run a recipe's stages (load, re-init, freeze, shard, train, checkpoint, export)."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from sailvl.data.loader import build_loader
from sailvl.errors import SailvlError
from sailvl.model.build import set_vision_drop_path
from sailvl.model.params import set_trainable
from sailvl.train.check import check_recipe
from sailvl.train.checkpoint import AppState, CheckpointManager, latest_checkpoint
from sailvl.train.dpo import DpoObjective, build_reference
from sailvl.train.export import export_hf, export_step, is_exported
from sailvl.train.flops import train_step_flops, trainable_parts
from sailvl.train.grpo import grpo_loop, prompt_sampler
from sailvl.train.metrics import MetricsLogger, Progress, peak_flops
from sailvl.train.optim import budget_progress, build_optimizer, build_param_groups, set_stage_lr
from sailvl.train.parallel import (
    DistInfo,
    apply_liger_kernels,
    init_distributed,
    load_full_state,
    mask_format_for,
    materialize,
    parallelize,
    param_dtype,
    resolve_attention,
    set_attention,
    step_switches,
)
from sailvl.train.recipe import Recipe, StageConfig
from sailvl.train.start import CLOCK_KEYS, resolve_start, stage_export_dir, start_model
from sailvl.train.step import train_step

log = logging.getLogger("sailvl.train")


@dataclass
class StageContext:
    """What a stage needs besides its config: the recipe, where to write, and how to resume."""

    recipe: Recipe
    out_dir: Path
    info: DistInfo
    resume: str | None  # None, "auto", or a checkpoint directory
    resume_ignore_data: bool = False  # restore the loader's positions even if its data changed (logged)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def print_freeze_table(rows: list[dict], stage: str) -> None:
    """The per-module parameter table printed at each stage start (rank 0)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"stage {stage}: parameters")
    for col in ("module", "params", "trainable", "frozen", "state"):
        table.add_column(col, justify="right" if col not in ("module", "state") else "left")
    for r in rows:
        state = "trainable" if r["frozen"] == 0 else ("frozen" if r["trainable"] == 0 else "partial")
        table.add_row(r["module"], f"{r['params']:,}", f"{r['trainable']:,}", f"{r['frozen']:,}", state)
    Console().print(table)


def initial_state(stage: StageConfig, clock: dict[str, int]) -> dict:
    """Trainer state at a stage's first step: the cumulative clock it continues, stage counters at zero."""
    return {
        "stage": stage.name,
        "step": 0,
        "stage_tokens_seen": 0,
        "stage_samples_seen": 0,
        "bad_steps": 0,
        **{key: int(clock[key]) for key in CLOCK_KEYS},
    }


def _upgrade_state(state: dict, clock: dict[str, int]) -> None:
    # A checkpoint written before the clock ran across stages counted this stage only.
    if "stage_tokens_seen" not in state:
        for key in ("tokens_seen", "samples_seen"):
            state[f"stage_{key}"] = state[key]
            state[key] += clock[key]
        state["global_step"] = clock["global_step"] + state["step"]


def _build_loader(ctx: StageContext, stage: StageConfig, processor, seed: int, attention: str):
    data_config = ctx.recipe.stage_data_config(stage, mask_format_for(attention))
    if ctx.info.device.type == "cuda":  # pinned batches: the step's host-to-device copies are asynchronous
        data_config = data_config.model_copy(update={"pin_memory": True})
    if stage.objective == "dpo":  # each record becomes a chosen and a rejected sequence, kept together
        data_config = data_config.model_copy(update={"preference_pairs": True})
    return build_loader(
        data_config, processor, ctx.info.rank, ctx.info.world_size, seed, ctx.resume_ignore_data
    )


def run_stage(ctx: StageContext, stage: StageConfig) -> Path:
    """Train one stage to its budget and export it; returns the export directory.

    With `resume="auto"` a stage already exported is skipped and the newest complete checkpoint of
    the stage is restored; with a directory, that checkpoint is restored.
    """
    info, recipe = ctx.info, ctx.recipe
    stage_dir = Path(ctx.out_dir) / stage.name
    export_dir = stage_export_dir(ctx.out_dir, stage.name)
    if ctx.resume == "auto" and is_exported(export_dir):
        log.info("stage %s is already exported in %s; skipping", stage.name, export_dir)
        return export_dir
    stage_index = recipe.stages.index(stage)
    seed_everything(recipe.seed + stage_index)
    start = resolve_start(recipe, ctx.out_dir, stage)
    started = start_model(recipe, start, stage, info)
    model, processor = started.model, started.processor
    rows = set_trainable(model, stage.trainable)
    set_vision_drop_path(model, stage.vision_drop_path or 0.0)
    if info.is_main:
        print_freeze_table(rows, stage.name)
    dtype = param_dtype(info.device, recipe.parallel.mixed_precision)
    meta = next(model.parameters()).device.type == "meta"
    attention = resolve_attention(recipe.parallel.attn_implementation, info.device)
    set_attention(model, attention, info.device)
    model.train()
    if recipe.parallel.liger_kernels:
        apply_liger_kernels(model)
    objective = None
    if stage.objective == "dpo":  # the reference is copied from the start model before the policy is sharded
        reference = build_reference(model, info, dtype, started.broadcast, started.full_state)
        objective = DpoObjective(stage.dpo, reference)
    model = parallelize(model, info, dtype, recipe.parallel.activation_checkpointing, recipe.parallel.compile)
    if meta:
        materialize(model, info.device)
    if started.broadcast:
        load_full_state(model, started.full_state, info)
        started.full_state = None
    switches = step_switches(recipe.parallel, info.device)
    optimizer = build_optimizer(
        build_param_groups(model, stage.lr, stage.weight_decay, stage.lr_groups),
        betas=stage.betas,
        fused=switches.fused_optimizer,
    )
    if stage.objective == "grpo":
        loader = prompt_sampler(ctx, stage)
    else:
        loader = _build_loader(ctx, stage, processor, recipe.seed + stage_index, attention)
    state = initial_state(stage, start.clock)
    app = AppState(model, optimizer, loader, state, info.rank)
    ckpt = CheckpointManager(stage_dir / "checkpoints", info, stage.keep_last, model.config)
    resume_from = latest_checkpoint(ckpt.root) if ctx.resume == "auto" else ctx.resume
    if resume_from is not None:
        ckpt.load(app, Path(resume_from))
        _upgrade_state(state, start.clock)
        log.info("stage %s resumed from %s at step %d", stage.name, resume_from, state["step"])
    if stage.objective == "grpo":
        grpo_loop(ctx, stage, model, optimizer, loader, app, ckpt, processor, dtype, switches)
    else:
        _loop(ctx, stage, model, optimizer, loader, app, ckpt, processor, dtype, switches, objective)
    keep_adapters = stage.lora is not None and stage.lora.keep_adapters
    export_hf(model, processor, export_dir, info, {**state, "done": True}, keep_adapters)
    if info.is_main:
        log.info("stage %s exported to %s", stage.name, export_dir)
    return export_dir


def _loop(
    ctx, stage, model, optimizer, loader, app, ckpt, processor, dtype, switches, objective=None
) -> None:
    info, state = ctx.info, app.trainer
    metrics = MetricsLogger(ctx.out_dir, info.is_main, ctx.recipe.wandb, f"{ctx.recipe.name}-{stage.name}")
    bar = Progress(info.is_main, stage.name)
    peak = peak_flops(info.device, ctx.recipe.peak_flops)
    trainable = trainable_parts(model)
    batches = iter(loader)
    # Log window: wall time since the last log and the part of it spent waiting for the loader.
    pending_bad, window_start, window_data = 0, time.perf_counter(), 0.0
    try:
        while budget_progress(stage.budget, state) < 1.0:
            lrs = set_stage_lr(optimizer, stage, state)
            fetch = time.perf_counter()
            micro = [_next_batch(batches) for _ in range(stage.grad_accum)]
            t0 = time.perf_counter()
            window_data += t0 - fetch
            result = train_step(
                model, optimizer, micro, info, dtype, stage.grad_clip, switches.foreach_clip, switches.sync,
                switches.compile_block_mask, objective,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            state["step"] += 1
            state["global_step"] += 1
            for key, count in (("tokens_seen", result.real_tokens), ("samples_seen", result.samples)):
                state[key] += count
                state[f"stage_{key}"] += count
            # Without per-step sync, skipped steps are counted on the device and read at log steps.
            pending_bad = pending_bad + result.skipped_t
            log_now = state["step"] % stage.log_every == 0
            save_now = bool(stage.save_every) and state["step"] % stage.save_every == 0
            if (switches.sync or log_now or save_now) and (bad := int(pending_bad)):
                pending_bad = 0
                state["bad_steps"] += bad
                log.warning("%d step(s) up to %d skipped: grad norm %s", bad, state["step"], result.grad_norm)
                if state["bad_steps"] > stage.max_bad_steps:
                    raise SailvlError(
                        f"stage {stage.name}: {state['bad_steps']} non-finite steps (max_bad_steps="
                        f"{stage.max_bad_steps}); lower the LR or check the data"
                    )
            if log_now:
                now = time.perf_counter()
                window = now - window_start
                if not switches.sync:  # the step only enqueued work: time the window between logs
                    seconds = window / stage.log_every
                data = {
                    "data_wait_s": window_data / stage.log_every,
                    "data_wait_fraction": window_data / window,
                }
                window_start, window_data = now, 0.0
                _log_step(metrics, state, result, lrs, seconds, data, model.config, peak, info, trainable)
            if switches.sync or log_now:
                bar.update(budget_progress(stage.budget, state), f"loss {result.loss:.4f}")
            if save_now:
                ckpt.save(app)
            export_step(model, processor, ctx.out_dir, stage, info, state)
        if not stage.save_every or state["step"] % stage.save_every:
            ckpt.save(app)
    finally:
        bar.close()
        metrics.close()


def _next_batch(batches):
    try:
        return next(batches)
    except StopIteration:
        raise SailvlError("the data loader ran out before the stage budget was reached") from None


def _log_step(metrics, state, result, lrs, seconds, data, model_config, peak, info, trainable) -> None:
    """One metrics row. `data`: the loader wait per step and its share of wall time over the log window (a
    share near 1 means the loader starves the step; with no host sync the host may block on the loader while
    the device still runs queued steps, so there it is an upper bound)."""
    record = {
        "stage": state["stage"],
        "step": state["step"],
        "loss": result.loss,
        "grad_norm": result.grad_norm,
        "skipped": result.skipped,
        "target_tokens": result.target_tokens,
        "global_step": state["global_step"],
        "tokens_seen": state["tokens_seen"],
        "samples_seen": state["samples_seen"],
        "stage_tokens_seen": state["stage_tokens_seen"],
        "stage_samples_seen": state["stage_samples_seen"],
        "tokens_per_s": result.real_tokens / seconds,
        "samples_per_s": result.samples / seconds,
        "padding_ratio": 1.0 - result.real_tokens / max(result.padded_tokens, 1),
        "step_seconds": seconds,
        **data,
    }
    record.update({f"lr/{name}": lr for name, lr in lrs.items()})
    record.update({name: float(value) for name, value in result.metrics_t.items()})
    if peak is not None:
        flops = train_step_flops(
            model_config,
            result.real_tokens,
            result.sum_sq_lengths,
            result.tiles,
            result.head_tokens,
            trainable,
        )
        record["mfu"] = flops / seconds / (peak * info.world_size)
    metrics.log(record)


def train_recipe(
    recipe: Recipe,
    out_dir: str | Path,
    stage: str | None = None,
    resume: str | None = None,
    resume_ignore_data: bool = False,
) -> list[Path]:
    """Run every stage of `recipe` in order (or only `stage`); returns the export directories.

    Works as one process or under torchrun (FSDP2 over all ranks). `resume` is None, "auto"
    (skip exported stages, continue from the newest complete checkpoint) or a checkpoint directory.
    A checkpoint's loader state is refused when the stage's data changed since (sources, mixture, pack
    length, tokenizer) unless `resume_ignore_data`. Non-zero ranks return an empty list (rank 0 reports).
    """
    if resume_ignore_data and resume is None:
        raise SailvlError("--resume-ignore-data needs --resume (auto or a checkpoint directory)")
    out_dir = Path(out_dir)
    checks = check_recipe(recipe, out_dir)  # the whole recipe, before anything is built or trained
    one_device = recipe.parallel.fsdp_one_device
    info = init_distributed(
        recipe.parallel.backend, torch.cuda.is_available() if one_device is None else one_device
    )
    logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING, format="%(message)s")
    for line in checks:
        log.info(line)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "recipe.yaml").write_text(_dump_recipe(recipe))
    stages = [recipe.stage(stage)] if stage else recipe.stages
    if resume not in (None, "auto") and len(stages) != 1:
        raise SailvlError("--resume PATH needs --stage NAME (the stage that checkpoint belongs to)")
    ctx = StageContext(recipe, out_dir, info, resume, resume_ignore_data)
    try:
        exports = [run_stage(ctx, s) for s in stages]
        return exports if info.is_main else []
    finally:
        if info.mesh is not None and dist.is_initialized():
            dist.destroy_process_group()


def _dump_recipe(recipe: Recipe) -> str:
    import yaml

    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)


__all__ = ["run_stage", "train_recipe"]
