"""Preference records (a Sample whose last assistant turn is the chosen answer and whose `metadata["rejected"]`
is the rejected one): checking them, the rejected conversation, and the pair as one packable item."""

from __future__ import annotations

import torch

from sailvl.config.constants import IGNORE_INDEX
from sailvl.data import bad_records as reasons
from sailvl.data.images import BadRecord
from sailvl.data.packing import PackItem
from sailvl.data.sample import Sample

REJECTED_KEY = "rejected"


def rejected_conversation(sample: Sample) -> list[dict[str, str]]:
    """The sample's conversation with its final assistant turn replaced by `metadata["rejected"]`.

    Raises BadRecord (`no_rejected`) when the record has no rejected text or does not end with an assistant
    turn, and (`rejected_is_chosen`) when the rejected text equals the chosen one (no preference to learn).
    """
    rejected = sample.metadata.get(REJECTED_KEY)
    if not isinstance(rejected, str) or not rejected.strip():
        raise BadRecord(reasons.NO_REJECTED, f"preference record {sample.id} has no metadata.rejected text")
    if not sample.conversation or sample.conversation[-1].get("role") != "assistant":
        raise BadRecord(reasons.NO_REJECTED, f"preference record {sample.id} does not end with an answer")
    if rejected.strip() == str(sample.conversation[-1]["content"]).strip():
        raise BadRecord(reasons.REJECTED_IS_CHOSEN, f"preference record {sample.id}: rejected equals chosen")
    return [*sample.conversation[:-1], {"role": "assistant", "content": rejected}]


def last_answer_labels(labels: torch.Tensor) -> torch.Tensor:
    """`labels` `[L]` with only the final run of targets kept (the last assistant turn): earlier turns are the
    shared prompt of a pair, not part of the answer whose log-prob is compared."""
    targets = (labels != IGNORE_INDEX).nonzero().flatten()
    if not targets.numel():
        return labels
    gaps = (targets[1:] - targets[:-1] > 1).nonzero().flatten()
    start = int(targets[gaps[-1] + 1]) if gaps.numel() else int(targets[0])
    out = labels.clone()
    out[:start] = IGNORE_INDEX
    return out


def pair_item(chosen: PackItem, rejected: PackItem) -> PackItem:
    """One PackItem holding `chosen` then `rejected` back to back (tiles duplicated: each sequence's image
    tokens need their own), so the pair always lands in one pack, one batch and one rank."""
    return PackItem(
        chosen.draw,
        chosen.sample_id,
        torch.cat([chosen.input_ids, rejected.input_ids]),
        torch.cat([chosen.labels, rejected.labels]),
        torch.cat([chosen.pixel_values, rejected.pixel_values]),
        chosen.num_tiles + rejected.num_tiles,
        parts=(chosen.length, rejected.length),
    )
