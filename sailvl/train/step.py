"""One optimizer step: token-summed loss normalised by the global target count, accumulation, clipping."""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sailvl.config.constants import IGNORE_INDEX
from sailvl.data.tiling import normalize_pixels
from sailvl.errors import SailvlError
from sailvl.train.flops import sum_squares
from sailvl.train.parallel import DistInfo, all_reduce_host, all_reduce_tensor_sum

BATCH_TENSORS = ("input_ids", "labels", "position_ids", "attention_mask", "pixel_values")


@dataclass
class StepResult:
    """What one optimizer step did; counts are summed over all ranks and micro-batches.

    The counts are exact host numbers that never came from the device (`global_counts`). `loss`, `grad_norm`
    and `skipped` are read from device tensors when asked for: a step run with `sync=False` leaves them on the
    device, so the host waits for the GPU only where the caller reads them (at log steps), not every step.
    """

    loss_t: torch.Tensor  # 0-dim: mean CE per target token (nats); with an objective, its loss
    grad_norm_t: torch.Tensor  # 0-dim
    skipped_t: torch.Tensor  # 0-dim bool: non-finite grad norm or no targets, so no update was applied
    target_tokens: int
    real_tokens: int  # non-pad tokens
    padded_tokens: int  # B * L summed, pad included
    samples: int
    tiles: int
    sum_sq_lengths: int = 0  # sum of L^2 over samples (attention work; `sailvl.train.flops`)
    head_tokens: int = 0  # positions whose logits the LM head computed
    metrics_t: dict[str, torch.Tensor] = field(default_factory=dict)  # the objective's own (DPO: rewards)

    @property
    def loss(self) -> float:
        """Mean cross entropy per target token (nats); a host sync."""
        return float(self.loss_t)

    @property
    def grad_norm(self) -> float:
        """Global gradient norm before clipping; a host sync."""
        return float(self.grad_norm_t)

    @property
    def skipped(self) -> bool:
        """Whether the update was skipped; a host sync."""
        return bool(self.skipped_t)


_COMPILED_CREATE_BLOCK_MASK = None


def flex_block_mask(segment_ids: torch.Tensor, device: torch.device, compiled: bool = False):
    """A flex_attention `BlockMask` on `device`: causal within each segment of `segment_ids` `[B,L]` (pad: -1).

    The same rule as `sailvl.data.collate.block_causal_mask`, but flex_attention skips the blocks that are
    fully masked, so a packed row costs the sum of its samples' attention instead of the full L x L square.
    `compiled`: build it with `torch.compile(create_block_mask)` (compiled once per process; eagerly the
    construction materialises L x L intermediates every micro-batch).
    """
    global _COMPILED_CREATE_BLOCK_MASK
    from torch.nn.attention.flex_attention import create_block_mask

    if compiled:
        if _COMPILED_CREATE_BLOCK_MASK is None:
            _COMPILED_CREATE_BLOCK_MASK = torch.compile(create_block_mask)
        create_block_mask = _COMPILED_CREATE_BLOCK_MASK

    segments = segment_ids.to(device)
    rows, length = segments.shape

    def same_segment_causal(b, h, q, kv):
        return (segments[b, q] == segments[b, kv]) & (kv <= q)

    return create_block_mask(same_segment_causal, rows, None, length, length, device=device)


def to_device(batch: dict, device: torch.device, dtype: torch.dtype, compiled_mask: bool = False) -> dict:
    """Move the model inputs of a collated batch to `device` (pixels to the compute dtype).

    uint8 pixels (`data.uint8_pixels`) are copied as uint8 and normalised on the device. Copies are
    non-blocking (asynchronous from pinned host memory on CUDA). A batch collated with `attention_mask: flex`
    carries `segment_ids`; its BlockMask is built here, on the device the attention runs on.
    """
    out = {}
    for key in BATCH_TENSORS:
        value = batch.get(key)
        if value is None:
            continue
        if key == "pixel_values":
            if not value.numel():
                continue
            value = value.to(device=device, non_blocking=True)
            value = normalize_pixels(value, dtype=dtype) if value.dtype == torch.uint8 else value.to(dtype)
        else:
            value = value.to(device, non_blocking=True)
        out[key] = value
    if batch.get("segment_ids") is not None and out.get("attention_mask") is None:
        out["attention_mask"] = flex_block_mask(batch["segment_ids"], device, compiled_mask)
    return out


@dataclass(frozen=True)
class TokenTargets:
    """Where one micro-batch's next-token targets sit, found on the host so the step never reads the device.

    Row b's j-th target: the hidden state at `positions[b, j]` predicts `labels[b, j]` (the label one position
    later). Rows are padded to the row with most targets: pads point at position 0 with label IGNORE_INDEX
    (cross entropy skips them), so every shape is known without a count read back from the device.
    """

    positions: torch.Tensor  # [B, P] long: positions t whose next label labels[:, t + 1] is a target
    labels: torch.Tensor  # [B, P] long: that next label, IGNORE_INDEX on pads
    count: int  # real targets (no pads)

    @property
    def head_rows(self) -> int:
        """Positions whose logits the LM head computes (B * P: pads included)."""
        return self.positions.numel()


def find_targets(labels: torch.Tensor) -> TokenTargets:
    """The target layout of a `[B, L]` label tensor on the host (`.numpy()` refuses device tensors, so
    this can never wait for a GPU)."""
    next_labels = labels[:, 1:].numpy()
    mask = next_labels != IGNORE_INDEX
    counts = mask.sum(axis=1)
    width = int(counts.max()) if counts.size else 0
    # A stable sort of "not a target" puts each row's target positions first, in order.
    order = np.argsort(~mask, axis=1, kind="stable")[:, :width]
    real = np.arange(width)[None, :] < counts[:, None]
    positions = np.where(real, order, 0)
    target_labels = np.where(real, np.take_along_axis(next_labels, order, axis=1), IGNORE_INDEX)
    return TokenTargets(torch.from_numpy(positions), torch.from_numpy(target_labels), int(counts.sum()))


def token_loss_sum(
    model: nn.Module, inputs: dict, target_logits_only: bool = True, targets: TokenTargets | None = None
) -> torch.Tensor:
    """Sum (not mean) of next-token cross entropy over target positions of one micro-batch (fp32, nats).

    With `target_logits_only` (default) the LM head and the softmax run only at positions whose next label is a
    target (transformers' integer `logits_to_keep`): in SFT ~15-20% of positions, so most of the vocab projection
    and its backward are skipped. The loss and gradients are the full-logits path's up to float rounding.
    `targets`: the layout from `find_targets` on the host labels; without it it is found from `inputs["labels"]`
    (a host read of those labels). No boolean indexing on the device: its output size would be a host sync.
    """
    labels = inputs["labels"]
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    if target_logits_only and accepts_logits_to_keep(model):
        targets = targets if targets is not None else find_targets(labels.cpu())
        positions = targets.positions.to(labels.device, non_blocking=True)
        target_labels = targets.labels.to(labels.device, non_blocking=True)
        logits = model(**model_inputs, use_cache=False, logits_to_keep=positions).logits  # [B, P, V]
        return F.cross_entropy(
            logits.flatten(0, 1).float(), target_labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )
    # Labels are not passed: HF would average per micro-batch, and we normalise by the global count.
    logits = model(**model_inputs, use_cache=False).logits[:, :-1]
    return F.cross_entropy(
        logits.flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )


def accepts_logits_to_keep(model: nn.Module) -> bool:
    """Whether the model's forward takes `logits_to_keep` (HF causal-LM heads do; FSDP keeps the signature)."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _grad_sync(model: nn.Module, enabled: bool) -> None:
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(enabled)


def _tiles(batch: dict) -> int:
    pixels = batch.get("pixel_values")
    return 0 if pixels is None else int(pixels.shape[0])


def global_counts(
    micro_batches: list[dict], targets: list[TokenTargets], target_logits_only: bool, info: DistInfo
) -> dict[str, int]:
    """The step's counts summed over micro-batches and ranks (the `StepResult` count fields).

    Every count is a host number (the collate's, `find_targets`', tensor shapes), so all of them are summed over
    ranks in one collective on the host group: none waits for the device, not even the global target count
    the loss is normalised by.
    """
    padded = sum(b["input_ids"].numel() for b in micro_batches)
    local = {
        "target_tokens": sum(t.count for t in targets),
        "real_tokens": sum(int(b["num_real_tokens"]) for b in micro_batches),
        "padded_tokens": padded,
        "samples": sum(len(b["sample_ids"]) for b in micro_batches),
        "tiles": sum(_tiles(b) for b in micro_batches),
        "sum_sq_lengths": sum(sum_squares(b.get("sample_lengths", ())) for b in micro_batches),
        "head_tokens": sum(t.head_rows for t in targets) if target_logits_only else padded,
    }
    summed = all_reduce_host(list(local.values()), info)
    return {key: int(total) for key, total in zip(local, summed, strict=True)}


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: list[dict],
    info: DistInfo,
    compute_dtype: torch.dtype,
    grad_clip: float,
    foreach_clip: bool = False,
    sync: bool = True,
    compile_block_mask: bool = False,
    objective=None,
) -> StepResult:
    """Forward/backward every micro-batch, then clip and step (or skip when the grad norm is not finite).

    The loss of each micro-batch is sum-CE * world_size / (global target tokens): FSDP averages gradients
    over ranks, so the applied gradient is exactly d(sum of all target CE) / (global target count),
    independent of how tokens are split over ranks and micro-batches.
    `foreach_clip`: the grad norm and clipping as multi-tensor kernels (fewer launches; same result within fp
    rounding). `sync=False`: no host sync in the step; the skip decision stays on the device through a fused
    optimizer's `found_inf` (the update, weight decay and step count are then not applied), so it needs
    `torch.optim.AdamW(..., fused=True)`; loss and grad norm stay tensors until read. The counts never need
    the device (`global_counts`). `compile_block_mask`: flex BlockMasks built by a compiled `create_block_mask`.
    `objective`: None for token cross entropy; else an object (`sailvl.train.dpo.DpoObjective`) whose
    `micro_loss` gives each micro-batch's share of the step loss, already normalised over all ranks.
    """
    if not sync and not getattr(optimizer, "defaults", {}).get("fused"):
        raise SailvlError("train_step(sync=False) needs a fused optimizer (parallel.fused_optimizer: true)")
    target_only = accepts_logits_to_keep(model)
    targets = [find_targets(b["labels"]) for b in micro_batches]
    counts = global_counts(micro_batches, targets, target_only, info)
    scale = info.world_size / max(counts["target_tokens"], 1)
    if objective is not None:
        objective.begin_step(micro_batches, targets, info)
    autocast = (
        torch.autocast(info.device.type, dtype=compute_dtype)
        if info.mesh is None and compute_dtype != torch.float32  # FSDP2's policy casts sharded models
        else contextlib.nullcontext()
    )
    dtype = compute_dtype if info.mesh is None else torch.float32
    loss_sum = torch.zeros((), dtype=torch.float64, device=info.device)
    for i, (batch, mb_targets) in enumerate(zip(micro_batches, targets, strict=True)):
        _grad_sync(model, i == len(micro_batches) - 1)
        inputs = to_device(batch, info.device, dtype, compile_block_mask)
        with autocast:
            if objective is None:
                mb_loss = token_loss_sum(model, inputs, target_only, mb_targets)
                mb_scaled = mb_loss * scale
            else:
                mb_loss = objective.micro_loss(model, inputs, i, mb_targets)
                mb_scaled = mb_loss * info.world_size  # FSDP averages gradients over ranks
        mb_scaled.backward()
        loss_sum += mb_loss.detach().double()
    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=foreach_clip)
    if hasattr(grad_norm, "full_tensor"):
        grad_norm = grad_norm.full_tensor()
    bad = ~torch.isfinite(grad_norm.detach()) | (counts["target_tokens"] == 0)
    if sync:
        if not bool(bad):
            optimizer.step()
    else:
        optimizer.found_inf = bad.to(torch.float32)
        optimizer.step()
        del optimizer.found_inf
    optimizer.zero_grad(set_to_none=True)
    loss_sum = all_reduce_tensor_sum(loss_sum, info)
    return StepResult(
        loss_t=loss_sum / max(counts["target_tokens"], 1) if objective is None else loss_sum,
        grad_norm_t=grad_norm.detach(),
        skipped_t=bad,
        **counts,
        metrics_t=objective.end_step(info) if objective is not None else {},
    )
