"""Rank balance of packed steps (`sailvl bench data --ranks N`): per-rank cost a*tokens + b*tiles, dealt vs balanced.

The cost weights are the sailvl-2b shape's training FLOPs (`sailvl.train.flops`): a tile costs its ViT + projector
FLOPs in units of one LLM token's (its 256 LLM tokens are counted as tokens).
"""

from __future__ import annotations

import torch

from sailvl.data.packing import PackItem, balance_packs, pack_cost
from sailvl.model import get_preset_config
from sailvl.train.flops import train_step_flops


def tile_cost_in_tokens(preset: str = "sailvl-2b") -> float:
    """FLOPs of one tile through the ViT and projector over FLOPs of one LLM token (linears + LM head share)."""
    config = get_preset_config(preset)
    per_token = train_step_flops(config, 1, 0, 0, 0)
    per_tile = train_step_flops(config, 0, 0, 1, 0)
    return per_tile / per_token


def _items(row: list[tuple[int, int]], start: int) -> list[PackItem]:
    empty = torch.empty(0)
    return [
        PackItem(draw=start + k, sample_id=str(start + k), input_ids=torch.empty(n), labels=empty,
                 pixel_values=empty, num_tiles=t)
        for k, (n, t) in enumerate(row)
    ]  # fmt: skip


def _imbalance(costs: list[float]) -> float:
    mean = sum(costs) / len(costs)
    return max(costs) / mean if mean else 1.0


def rank_balance(
    rows: list[list[tuple[int, int]]],
    ranks: int,
    max_tokens: int,
    max_tiles: int,
    tile_cost: float | None = None,
) -> dict:
    """Imbalance (max / mean per-rank cost, averaged over steps) of `rows` (each one pack's (tokens, tiles) samples).

    Dealt: consecutive packs go to ranks 0..N-1, one per rank per step, as independent per-rank loaders give.
    Balanced: the same step's packs evened out by `balance_packs` (same samples, so the same packing efficiency).
    """
    if tile_cost is None:
        tile_cost = tile_cost_in_tokens()
    steps = len(rows) // ranks
    if steps == 0:
        return {"ranks": ranks, "error": f"need at least {ranks} timed packs (--batches) for {ranks} ranks"}
    dealt, balanced = [], []
    draw = 0
    for s in range(steps):
        step_packs = []
        for row in rows[s * ranks : (s + 1) * ranks]:
            step_packs.append(_items(row, draw))
            draw += len(row)
        dealt.append(_imbalance([pack_cost(p, 1.0, tile_cost) for p in step_packs]))
        packs = balance_packs(step_packs, max_tokens, max_tiles, 1.0, tile_cost)
        balanced.append(_imbalance([pack_cost(p, 1.0, tile_cost) for p in packs]))
    return {
        "ranks": ranks,
        "steps": steps,
        "tile_cost_tokens": round(tile_cost, 1),
        "dealt_imbalance": round(sum(dealt) / steps, 4),
        "balanced_imbalance": round(sum(balanced) / steps, 4),
    }
