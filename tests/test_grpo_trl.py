"""sailvl's GRPO / DAPO loss, advantages, clip and KL terms against TRL 1.16's own code (the test-only reference).

TRL's `GRPOTrainer._compute_loss` is a method of a full trainer; it is called here unbound on a stub holding just
the attributes it reads, and the stub's `_get_per_token_logps_and_entropies` hands it the test's log-probs, so the
loss arithmetic that runs is TRL's own. TRL computes advantages inline in `_generate_and_score_completions` (not
callable on given rewards): its formula is re-derived from that function, using TRL's own `nanstd`.
TRL is imported in a fixture (not at collection): a cold import takes ~10 s of CPU.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from sailvl.train.grpo import aggregate, group_advantages, token_loss


@pytest.fixture(scope="module")
def trl():
    """TRL's grpo_trainer and utils modules, imported only when a test here runs (not at collection)."""
    grpo_trainer = pytest.importorskip("trl.trainer.grpo_trainer")
    return grpo_trainer, pytest.importorskip("trl.trainer.utils")


B, T, G = 6, 5, 3


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    logps = (-torch.rand(B, T, generator=g) * 3).requires_grad_(True)
    # Old log-probs away from the current ones: ratios spread over ~[0.6, 1.6], so both clips bite.
    old = (logps.detach() + (torch.rand(B, T, generator=g) - 0.5)).clamp(max=0)
    ref = (logps.detach() + (torch.rand(B, T, generator=g) - 0.5) * 0.4).clamp(max=0)
    mask = torch.ones(B, T)
    mask[0, 3:] = 0
    mask[4, 1:] = 0  # answers of different lengths: sequence and token aggregation differ
    advantages = torch.randn(B, generator=g)
    return logps, old, ref, mask, advantages


def _trl_loss(trl, loss_type: str, logps, old, ref, mask, advantages, eps_low, eps_high, beta):
    """TRL's `_compute_loss` run on the given tensors (one process, no accumulation)."""
    stub = SimpleNamespace(
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        loss_type=loss_type,
        epsilon_low=eps_low,
        epsilon_high=eps_high,
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=T,
        accelerator=SimpleNamespace(
            num_processes=1, gather=lambda x: x, reduce=lambda x, reduction: x, gather_for_metrics=lambda x: x
        ),
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
    )
    inputs = {
        "prompt_ids": torch.zeros(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),
    }
    loss = trl[0].GRPOTrainer._compute_loss(stub, None, inputs)
    return loss, stub._metrics["train"]


def _ours(aggregation: str, logps, old, ref, mask, advantages, eps_low, eps_high, beta):
    terms = token_loss(logps, old, advantages, eps_low, eps_high, ref if beta else None, beta)
    denominator = mask.sum() if aggregation == "token" else mask.shape[0]
    return aggregate(terms.loss, mask, aggregation) / denominator, terms


@pytest.mark.parametrize(
    ("loss_type", "aggregation", "eps_high", "beta"),
    [
        ("grpo", "sequence", 0.2, 0.0),  # GRPO: symmetric clip, per-answer mean
        ("grpo", "sequence", 0.2, 0.04),  # with the k3 KL term
        ("dapo", "token", 0.28, 0.0),  # DAPO: clip-higher, token-level mean
        ("bnpo", "token", 0.28, 0.04),
    ],
)
def test_loss_and_gradient_match_trl(trl, loss_type, aggregation, eps_high, beta):
    logps, old, ref, mask, advantages = _batch(0)
    theirs, their_metrics = _trl_loss(trl, loss_type, logps, old, ref, mask, advantages, 0.2, eps_high, beta)
    (their_grad,) = torch.autograd.grad(theirs, logps)
    ours, terms = _ours(aggregation, logps, old, ref, mask, advantages, 0.2, eps_high, beta)
    (our_grad,) = torch.autograd.grad(ours, logps)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(our_grad, their_grad)
    clip_fraction = float((terms.clipped * mask).sum() / mask.sum())
    assert clip_fraction == pytest.approx(their_metrics["clip_ratio/region_mean"][0])
    assert 0 < clip_fraction < 1  # the batch exercises the clip (measured 0.33 at eps_high 0.2, 0.29 at 0.28)
    if beta:
        kl = float((terms.kl.detach() * mask).sum() / mask.sum())
        assert kl == pytest.approx(their_metrics["kl"][0])


def test_sequence_and_token_aggregation_differ_on_uneven_answers():
    # Guards the parametrised cases above against passing with the two aggregations confused.
    logps, old, ref, mask, advantages = _batch(0)
    seq, _ = _ours("sequence", logps, old, ref, mask, advantages, 0.2, 0.2, 0.0)
    tok, _ = _ours("token", logps, old, ref, mask, advantages, 0.2, 0.2, 0.0)
    assert abs(float(seq - tok)) > 1e-3


@pytest.mark.parametrize("scale", [True, False])
def test_advantages_match_trl_formula(trl, scale):
    # TRL (scale_rewards "group" / "none", one reward function, sum_then_normalize):
    #   A = r - mean_group(r), then / (nanstd_group(r) + 1e-4) unless "none".
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.5, 2.0])
    grouped = rewards.view(-1, G)
    expected = rewards - grouped.mean(1).repeat_interleave(G)
    std = trl[1].nanstd(grouped, dim=1).repeat_interleave(G)
    if scale:
        expected = expected / (std + 1e-4)
    ours, flat = group_advantages(rewards, G, scale)
    torch.testing.assert_close(ours, expected)
    assert flat.tolist() == [False, True, False]  # TRL's is_std_zero, per group
