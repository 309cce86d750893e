"""RL with verifiable rewards (`objective: grpo`): GRPO, with DAPO's clip-higher, token-level loss and dynamic
sampling as switches, and an optional k3 KL term to the reference model.

A stage step is one batch of rollouts (`prompts_per_step` prompts x `group_size` answers on each rank) and its
`updates_per_rollout` optimizer updates. Rewards come from `sailvl.train.rewards`; advantages are normalised
within each prompt's group. Checkpoints, resume and metrics go through the trainer's AppState, CheckpointManager
and MetricsLogger, with the prompt sampler as the AppState's loader.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import torch

from sailvl.data.bad_records import BadRecordCounter
from sailvl.errors import SailvlError
from sailvl.train.export import export_step
from sailvl.train.metrics import MetricsLogger, Progress
from sailvl.train.optim import budget_progress, set_stage_lr
from sailvl.train.parallel import all_reduce_host
from sailvl.train.rewards import check_rewards, exact_match, total_reward
from sailvl.train.rollout import PromptSampler, Rollouts, completion_logps, read_prompts, sample_rollouts
from sailvl.train.start import resolve_start, start_model

log = logging.getLogger("sailvl.train")
STD_EPS = 1e-4  # added to a group's reward std before dividing (TRL's value)


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages of `rewards` `[B]` (rows grouped by prompt, `group_size` each): reward minus its group's mean,
    divided by the group's std (unbiased) + 1e-4 when `scale`; and, per group, whether all rewards were equal."""
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1).repeat_interleave(group_size)
    std = grouped.std(dim=1)
    advantages = rewards - mean
    if scale:
        advantages = advantages / (std.repeat_interleave(group_size) + STD_EPS)
    return advantages, torch.isclose(std, torch.zeros_like(std))


@dataclass
class TokenLoss:
    """Per-token terms of the clipped policy objective, `[B, T]` (padding not yet masked)."""

    loss: torch.Tensor  # -min(r * A, clip(r) * A) + beta * kl
    clipped: torch.Tensor  # bool: the clip decided the term (ratio outside the range the advantage pushes to)
    kl: torch.Tensor | None  # k3 estimate of KL(policy || reference)


def token_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
    ref_logps: torch.Tensor | None = None,
    kl_beta: float = 0.0,
) -> TokenLoss:
    """The PPO-clip term per completion token (`advantages` `[B]`), plus `kl_beta` times the k3 KL estimate
    exp(ref - logp) - (ref - logp) - 1 when reference log-probs are given."""
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(1)
    clipped_ratio = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    loss = -torch.min(ratio * adv, clipped_ratio * adv)
    clipped = ((ratio < 1 - epsilon_low) & (adv < 0)) | ((ratio > 1 + epsilon_high) & (adv > 0))
    kl = None
    if ref_logps is not None and kl_beta > 0:
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1
        loss = loss + kl_beta * kl
    return TokenLoss(loss, clipped, kl)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, aggregation: str) -> torch.Tensor:
    """The sum the step normalises: over tokens ("token", DAPO: divide by the step's token count) or over
    answers of each answer's mean token term ("sequence", GRPO: divide by the step's answer count)."""
    masked = per_token * mask
    if aggregation == "token":
        return masked.sum()
    return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum()


def prompt_sampler(ctx, stage) -> PromptSampler:
    """The stage's RL prompts (from its data sources), sampled in a seeded order; bad records are counted."""
    check_rewards(stage.grpo.rewards)
    bad = BadRecordCounter()
    prompts = read_prompts(ctx.recipe.stage_data_config(stage), bad)
    if bad.num_bad:
        log.warning(
            "stage %s: %d record(s) without an RL prompt skipped: %s",
            stage.name,
            bad.num_bad,
            dict(bad.counts),
        )
    seed = ctx.recipe.seed + ctx.recipe.stages.index(stage)
    return PromptSampler(prompts, seed, ctx.info.rank, ctx.info.world_size)


@contextlib.contextmanager
def adapters_disabled(model):
    """The model without its LoRA adapters inside the block (the stage's start model, adapters starting at 0)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def build_reference(ctx, stage, device):
    """The KL reference: None without a KL term; "adapters" with LoRA (the model with adapters off); else a
    frozen copy of the stage's start model (one process only)."""
    if stage.grpo.kl_beta == 0:
        return None
    if stage.lora is not None:
        return "adapters"
    if ctx.info.world_size > 1:
        raise SailvlError(
            f"stage {stage.name}: grpo.kl_beta > 0 under FSDP needs lora (the reference is the adapter-free model)"
        )
    reference = start_model(ctx.recipe, resolve_start(ctx.recipe, ctx.out_dir, stage), stage, ctx.info).model
    return reference.to(device).eval().requires_grad_(False)


@torch.no_grad()
def reference_logps(model, reference, rollouts: Rollouts, rows: slice, temperature: float) -> torch.Tensor:
    """Log-probs of the completions of `rows` under the reference."""
    if reference == "adapters":
        with adapters_disabled(model):
            return completion_logps(model, rollouts, rows, temperature)[0]
    return completion_logps(reference, rollouts, rows, temperature)[0]


def micro_slices(rows: int, parts: int) -> list[slice]:
    """`rows` split into `parts` contiguous slices (empty ones dropped)."""
    size = -(-rows // parts)
    return [slice(i, min(i + size, rows)) for i in range(0, rows, size)]


def _autocast(info, dtype: torch.dtype):
    # As the SFT step: FSDP2's mixed-precision policy casts sharded models; one process autocasts.
    if info.mesh is None and dtype != torch.float32:
        return torch.autocast(info.device.type, dtype=dtype)
    return contextlib.nullcontext()


def _grad_sync(model, enabled: bool) -> None:
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(enabled)


def policy_updates(
    ctx, stage, model, optimizer, rollouts, advantages, mask, reference, dtype, switches
) -> dict:
    """`updates_per_rollout` optimizer updates on one batch of rollouts; returns the local sums to log.

    `mask` `[B, T]` holds the completion tokens that enter the loss (dropped groups zeroed). Each micro-batch's
    loss is its aggregate sum * world_size / (the global token or answer count), so the applied gradient is the
    same however the rows are split over ranks and micro-batches (FSDP averages over ranks)."""
    info, spec = ctx.info, stage.grpo
    slices = micro_slices(mask.shape[0], stage.grad_accum)
    kept_tokens, kept_rows = all_reduce_host([float(mask.sum()), float((mask.sum(1) > 0).sum())], info)
    denominator = kept_tokens if spec.loss_aggregation == "token" else kept_rows
    stats = {"loss": 0.0, "clipped": 0.0, "kl": 0.0, "entropy": 0.0, "kept_tokens": float(mask.sum())}
    stats.update(grad_norm=float("nan"), updates=0, bad_updates=0)
    if denominator == 0:  # every group was dropped on every rank: nothing to learn from this batch
        return stats
    scale = info.world_size / denominator
    olds = refs = None
    with torch.no_grad(), _autocast(info, dtype):
        if spec.updates_per_rollout > 1:  # the rollout policy, fixed while the policy moves
            olds = [completion_logps(model, rollouts, rows, spec.temperature)[0] for rows in slices]
        if reference is not None:
            refs = [reference_logps(model, reference, rollouts, rows, spec.temperature) for rows in slices]
    params = [p for p in model.parameters() if p.requires_grad]
    for update in range(spec.updates_per_rollout):
        loss_sum = clipped = kl = 0.0
        for i, rows in enumerate(slices):
            _grad_sync(model, i == len(slices) - 1)
            with _autocast(info, dtype):
                logps, entropy = completion_logps(
                    model, rollouts, rows, spec.temperature, with_entropy=update == 0
                )
            old = olds[i] if olds is not None else logps.detach()
            terms = token_loss(
                logps, old, advantages[rows], spec.epsilon_low, spec.epsilon_high,
                refs[i] if refs is not None else None, spec.kl_beta,
            )  # fmt: skip
            loss = aggregate(terms.loss, mask[rows], spec.loss_aggregation) * scale
            loss.backward()
            loss_sum += float(loss.detach()) / info.world_size
            clipped += float((terms.clipped * mask[rows]).sum())
            kl += float((terms.kl.detach() * mask[rows]).sum()) if terms.kl is not None else 0.0
            if entropy is not None:
                stats["entropy"] += float((entropy * rollouts.completion_mask[rows]).sum())
        grad_norm = torch.nn.utils.clip_grad_norm_(params, stage.grad_clip, foreach=switches.foreach_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        if torch.isfinite(grad_norm):
            optimizer.step()
        else:
            stats["bad_updates"] += 1
        optimizer.zero_grad(set_to_none=True)
        stats.update(loss=loss_sum, clipped=clipped, kl=kl, grad_norm=float(grad_norm))
        stats["updates"] += 1
    return stats


def rollout_seed(seed: int, stage_index: int, step: int, rank: int) -> int:
    """The sampling seed of one step's rollouts on one rank: the same recipe seed gives the same answers."""
    return ((seed * 1_000_003 + stage_index) * 1_000_003 + step) * 4099 + rank


def grpo_step(
    ctx, stage, model, optimizer, sampler, processor, reference, dtype, switches, step: int
) -> dict:
    """Sample one batch of rollouts, score it, update the policy; returns the step's metrics (all ranks)."""
    info, spec = ctx.info, stage.grpo
    prompts = sampler.next_prompts(spec.prompts_per_step)
    seed = rollout_seed(ctx.recipe.seed, ctx.recipe.stages.index(stage), step, info.rank)
    rollouts = sample_rollouts(model, processor, prompts, spec, stage.max_tiles, seed, info.world_size > 1)
    group = spec.group_size
    scores = [
        total_reward(spec.rewards, text, prompts[i // group].gold, prompts[i // group].sample)
        for i, text in enumerate(rollouts.texts)
    ]
    rewards = torch.tensor([s["reward"] for s in scores], dtype=torch.float32)
    advantages, flat = group_advantages(rewards, group, spec.scale_rewards)
    keep = (
        ~flat.repeat_interleave(group)
        if spec.dynamic_sampling
        else torch.ones_like(flat.repeat_interleave(group))
    )
    device = rollouts.completion_mask.device
    mask = rollouts.completion_mask.float() * keep.to(device).unsqueeze(1)
    stats = policy_updates(
        ctx, stage, model, optimizer, rollouts, advantages.to(device), mask, reference, dtype, switches
    )
    accuracy = [exact_match(text, prompts[i // group].gold) for i, text in enumerate(rollouts.texts)]
    local = {
        "rows": float(len(scores)),
        "groups": float(len(prompts)),
        "groups_dropped": float(flat.sum()) if spec.dynamic_sampling else 0.0,
        "reward": float(rewards.sum()),
        **{f"reward/{name}": sum(s[name] for s in scores) for name in spec.rewards},
        "accuracy": sum(accuracy),
        "answer_tokens": float(rollouts.completion_mask.sum()),
        "prompt_tokens": float(rollouts.prompt_mask.sum()),
        **{k: stats[k] for k in ("loss", "clipped", "kl", "entropy", "kept_tokens", "bad_updates")},
    }
    total = dict(zip(local, all_reduce_host(list(local.values()), info), strict=True))
    rows, answer_tokens = total["rows"], max(total["answer_tokens"], 1.0)
    kept = max(total["kept_tokens"], 1.0)
    record = {
        "loss": total["loss"],
        "grad_norm": stats["grad_norm"],
        "reward": total["reward"] / rows,
        **{k: total[k] / rows for k in total if k.startswith("reward/")},
        "accuracy": total["accuracy"] / rows,
        "answer_tokens": total["answer_tokens"] / rows,
        "entropy": total["entropy"] / answer_tokens,
        "clip_fraction": total["clipped"] / kept / max(stats["updates"], 1),
        "groups_dropped": int(total["groups_dropped"]),
        "updates": stats["updates"],
        "bad_updates": int(total["bad_updates"]),
    }
    if spec.kl_beta > 0:
        record["kl"] = total["kl"] / kept / max(stats["updates"], 1)
    return {
        "record": record,
        "samples": int(rows),
        "tokens": int(total["answer_tokens"] + total["prompt_tokens"]),
    }


def grpo_loop(ctx, stage, model, optimizer, loader, app, ckpt, processor, dtype, switches) -> None:
    """The RL stage's loop (the trainer's `_loop` for `objective: grpo`): `loader` is the `prompt_sampler`."""
    info, state = ctx.info, app.trainer
    reference = build_reference(ctx, stage, info.device)
    metrics = MetricsLogger(ctx.out_dir, info.is_main, ctx.recipe.wandb, f"{ctx.recipe.name}-{stage.name}")
    bar = Progress(info.is_main, stage.name)
    try:
        while budget_progress(stage.budget, state) < 1.0:
            lrs = set_stage_lr(optimizer, stage, state)
            t0 = time.perf_counter()
            out = grpo_step(
                ctx, stage, model, optimizer, loader, processor, reference, dtype, switches, state["step"]
            )
            seconds = time.perf_counter() - t0
            state["step"] += 1
            state["global_step"] += 1
            for key, count in (("tokens_seen", out["tokens"]), ("samples_seen", out["samples"])):
                state[key] += count
                state[f"stage_{key}"] += count
            record = out["record"]
            if record["bad_updates"]:
                state["bad_steps"] += record["bad_updates"]
                log.warning(
                    "step %d: %d update(s) skipped: non-finite grad norm",
                    state["step"],
                    record["bad_updates"],
                )
                if state["bad_steps"] > stage.max_bad_steps:
                    raise SailvlError(
                        f"stage {stage.name}: {state['bad_steps']} non-finite steps (max_bad_steps="
                        f"{stage.max_bad_steps}); lower the LR or check the data"
                    )
            if state["step"] % stage.log_every == 0:
                metrics.log(
                    {"stage": state["stage"], "step": state["step"], "global_step": state["global_step"], **record,
                     "samples_seen": state["samples_seen"], "stage_samples_seen": state["stage_samples_seen"],
                     "step_seconds": seconds, **{f"lr/{name}": lr for name, lr in lrs.items()}}
                )  # fmt: skip
            bar.update(budget_progress(stage.budget, state), f"reward {record['reward']:.3f}")
            if stage.save_every and state["step"] % stage.save_every == 0:
                ckpt.save(app)
            export_step(model, processor, ctx.out_dir, stage, info, state)
        if not stage.save_every or state["step"] % stage.save_every:
            ckpt.save(app)
    finally:
        bar.close()
        metrics.close()
