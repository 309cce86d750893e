"""DPO / IPO as a stage objective: per-sequence answer log-probs of a packed batch of preference pairs, the pair
losses against the reference (the stage's starting weights), and the step's preference metrics."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sailvl.config.constants import IGNORE_INDEX
from sailvl.errors import SailvlError
from sailvl.model.params import is_adapter_param
from sailvl.train.parallel import (
    DistInfo,
    all_reduce_host,
    all_reduce_tensor_sum,
    load_full_state,
    materialize,
    parallelize,
)
from sailvl.train.recipe import DpoSpec
from sailvl.train.step import TokenTargets, accepts_logits_to_keep

# Logged per step (means over the step's pairs, all ranks): as TRL names them.
METRICS = ("dpo/loss", "rewards/accuracy", "rewards/margin", "rewards/chosen", "rewards/rejected")


@dataclass(frozen=True)
class SequenceTargets:
    """Which sequence of a micro-batch each target of a `TokenTargets` layout belongs to (found on the host)."""

    index: torch.Tensor  # [B, P] long: the sequence of each target; pads point at the spare slot `count`
    count: int  # sequences in the micro-batch (2 per pair: chosen 2k, rejected 2k+1)
    tokens: np.ndarray  # [count] targets per sequence


def sequence_targets(sequence_ids: torch.Tensor, targets: TokenTargets) -> SequenceTargets:
    """Map each target to its sequence with the collate's `sequence_ids` `[B, L]` (host tensors only).

    The target at `positions[b, j]` predicts the token one position later, which belongs to the same sequence
    (a sequence's first token is never a target), so a packed row's targets split cleanly by sequence.
    """
    ids = sequence_ids.numpy()
    count = int(ids.max()) + 1 if ids.size else 0
    owner = np.take_along_axis(ids, targets.positions.numpy() + 1, axis=1)
    owner = np.where(targets.labels.numpy() != IGNORE_INDEX, owner, count)
    tokens = np.bincount(owner.ravel(), minlength=count + 1)[:count]
    return SequenceTargets(torch.from_numpy(owner), count, tokens)


def sequence_logps(
    model: nn.Module, inputs: dict, targets: TokenTargets, sequences: SequenceTargets
) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed answer log-prob `[S]`, summed answer NLL of the same tokens `[S]`) per sequence, fp32 nats.

    Packing-aware: each sequence's sum runs over its own target tokens only, so a pair packed into one row with
    other samples gets the log-probs it would get alone. The LM head runs only at target positions when the
    model takes `logits_to_keep` (as `token_loss_sum`).
    """
    device = inputs["input_ids"].device
    positions = targets.positions.to(device, non_blocking=True)
    labels = targets.labels.to(device, non_blocking=True)
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    if accepts_logits_to_keep(model):
        logits = model(**model_inputs, use_cache=False, logits_to_keep=positions).logits  # [B, P, V]
    else:
        full = model(**model_inputs, use_cache=False).logits
        logits = torch.gather(full, 1, positions[..., None].expand(-1, -1, full.shape[-1]))
    nll = F.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    )
    owner = sequences.index.to(device, non_blocking=True).flatten()
    sums = torch.zeros(sequences.count + 1, dtype=torch.float32, device=device).index_add_(0, owner, nll)
    return -sums[:-1], sums[:-1]


def pair_losses(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    spec: DpoSpec,
    chosen_tokens: torch.Tensor | None = None,
    rejected_tokens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss per pair, chosen reward, rejected reward) from summed log-probs `[K]` of policy and reference.

    sigmoid: DPO, -log sigmoid(beta * margin) with margin = (chosen - ref_chosen) - (rejected - ref_rejected);
    with label smoothing eps it is cDPO, the expected loss when each label is flipped with probability eps.
    ipo: (margin' - 1 / (2 beta))^2, where margin' uses log-ratios averaged per answer token (as TRL does, so
    beta does not depend on answer length; needs the token counts). Rewards are beta * log-ratio (detached).
    """
    chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    if spec.loss == "ipo":
        if chosen_tokens is None or rejected_tokens is None:
            raise ValueError("the ipo loss needs the answers' token counts")
        delta = chosen_ratio / chosen_tokens.clamp(min=1) - rejected_ratio / rejected_tokens.clamp(min=1)
        losses = (delta - 1 / (2 * spec.beta)) ** 2
    else:
        logits = spec.beta * (chosen_ratio - rejected_ratio)
        eps = spec.label_smoothing
        losses = -(1 - eps) * F.logsigmoid(logits) - eps * F.logsigmoid(-logits)
    return losses, spec.beta * chosen_ratio.detach(), spec.beta * rejected_ratio.detach()


@contextlib.contextmanager
def adapters_disabled(model: nn.Module):
    """The model without its LoRA adapters (the stage's start weights when only adapters train).

    peft's own switch (`enable_adapters(False)`) also flips the adapters' requires_grad, which FSDP2 would
    carry into its unsharded parameters; only the forward flag is flipped here, and restored.
    """
    layers = [m for m in model.modules() if hasattr(m, "_disable_adapters") and hasattr(m, "lora_A")]
    saved = [layer._disable_adapters for layer in layers]
    try:
        for layer in layers:
            layer._disable_adapters = True
        yield model
    finally:
        for layer, flag in zip(layers, saved, strict=True):
            layer._disable_adapters = flag


def trains_only_adapters(model: nn.Module) -> bool:
    """True when the model has LoRA adapters and nothing else trains (so adapters off = start weights)."""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    return bool(trainable) and all(is_adapter_param(name) for name in trainable)


def build_reference(
    model: nn.Module, info: DistInfo, dtype: torch.dtype, broadcast: bool, full_state: dict | None
) -> nn.Module | None:
    """The frozen reference for DPO, from the policy before it is sharded; None: the policy with its adapters
    disabled (a LoRA stage where only adapters train; no second copy of the weights).

    Otherwise a frozen copy of the start model, sharded by FSDP2 like the policy (so it costs one more set of
    sharded weights per rank, no gradients or optimizer state). Precomputing reference log-probs instead would
    need a pass over the data before training and a cache keyed by the loader's stream; a copy keeps resume and
    packing untouched. On the meta device (several ranks) the copy gets the start weights as the policy does:
    `broadcast` from rank 0's `full_state`.
    """
    if trains_only_adapters(model):
        return None
    meta = next(model.parameters()).device.type == "meta"
    if meta and not broadcast:
        raise SailvlError(
            "objective dpo needs start weights for its reference, not a randomly initialised preset"
        )
    reference = copy.deepcopy(model).requires_grad_(False).eval()
    reference = parallelize(reference, info, dtype)
    if meta:
        materialize(reference, info.device)
        load_full_state(reference, full_state, info)
    return reference


class DpoObjective:
    """What `train_step` asks for each micro-batch of a DPO stage: its share of the step loss (the mean pair
    loss over all ranks and micro-batches, plus `sft_weight` x the chosen answers' mean token NLL)."""

    def __init__(self, spec: DpoSpec, reference: nn.Module | None):
        self.spec, self.reference = spec, reference
        self.sequences: list[SequenceTargets] = []
        self.pairs, self.chosen_tokens = 1, 1
        self.sums: torch.Tensor | None = None

    def begin_step(self, micro_batches: list[dict], targets: list[TokenTargets], info: DistInfo) -> None:
        """Host-side layout of the step's sequences and the global pair / chosen-token counts (one collective)."""
        for batch in micro_batches:
            if "sequence_ids" not in batch:
                raise SailvlError("objective dpo needs preference batches (data.preference_pairs)")
        self.sequences = [
            sequence_targets(b["sequence_ids"], t) for b, t in zip(micro_batches, targets, strict=True)
        ]
        local = [
            sum(s.count // 2 for s in self.sequences),
            sum(int(s.tokens[0::2].sum()) for s in self.sequences),
        ]
        pairs, chosen_tokens = all_reduce_host(local, info)
        self.pairs, self.chosen_tokens = max(int(pairs), 1), max(int(chosen_tokens), 1)
        self.sums = torch.zeros(len(METRICS), dtype=torch.float32, device=info.device)

    def micro_loss(self, model: nn.Module, inputs: dict, index: int, targets: TokenTargets) -> torch.Tensor:
        """This micro-batch's share of the step loss (0-dim fp32); summed over micro-batches and ranks it is
        the step's loss."""
        sequences = self.sequences[index]
        with torch.no_grad():
            if self.reference is None:
                with adapters_disabled(model):
                    ref, _ = sequence_logps(model, inputs, targets, sequences)
            else:
                ref, _ = sequence_logps(self.reference, inputs, targets, sequences)
        logps, nll = sequence_logps(model, inputs, targets, sequences)
        tokens = torch.as_tensor(sequences.tokens, dtype=torch.float32).to(logps.device)
        losses, chosen_reward, rejected_reward = pair_losses(
            logps[0::2], logps[1::2], ref[0::2], ref[1::2], self.spec, tokens[0::2], tokens[1::2]
        )
        loss = losses.sum() / self.pairs
        if self.spec.sft_weight:
            loss = loss + self.spec.sft_weight * nll[0::2].sum() / self.chosen_tokens
        margin = chosen_reward - rejected_reward
        step = torch.stack(
            [losses.detach().sum(), (margin > 0).float().sum(), margin.sum(), chosen_reward.sum(),
             rejected_reward.sum()]
        )  # fmt: skip
        self.sums += step / self.pairs
        return loss

    def end_step(self, info: DistInfo) -> dict[str, torch.Tensor]:
        """The step's metrics (means over all pairs of all ranks), as device tensors read at log steps."""
        sums = all_reduce_tensor_sum(self.sums, info)
        return {name: sums[k] for k, name in enumerate(METRICS)}


__all__ = ["DpoObjective", "build_reference", "pair_losses", "sequence_logps", "sequence_targets"]
