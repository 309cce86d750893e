"""Turning packs (or plain sample lists) into the batch dict the trainer consumes (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import torch

from sailvl.config.constants import IGNORE_INDEX
from sailvl.data.packing import PackItem


def block_causal_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """Bool `[B,1,L,L]` mask, True where query i may attend key j: same segment and j <= i.

    `segment_ids` is `[B,L]` long; padding carries segment -1 and attends only to itself (no empty rows).
    """
    length = segment_ids.shape[1]
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    mask = same & causal
    mask |= torch.eye(length, dtype=torch.bool)
    return mask[:, None]


def as_additive_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bool mask -> additive float mask (0 where allowed, dtype min elsewhere) for eager attention."""
    out = torch.zeros(mask.shape, dtype=dtype)
    return out.masked_fill(~mask, torch.finfo(dtype).min)


def _pixels(items: list[PackItem]) -> torch.Tensor | None:
    """All tiles in order of appearance, or None for a text-only batch (the model then skips the ViT)."""
    tiles = [it.pixel_values for it in items if it.pixel_values is not None and it.pixel_values.numel()]
    if not tiles:
        return None
    return torch.cat(tiles, dim=0)


def collate_packs(
    packs: list[list[PackItem]], max_tokens: int, pad_token_id: int, mask_format: str = "bool"
) -> dict:
    """Packed rows of exactly `max_tokens` tokens: position_ids restart per sample, attention never crosses samples.

    A preference pair's two sequences are two segments; with pairs the batch also carries `sequence_ids` `[B,L]`
    (the index of each token's sequence in the batch, -1 on pads; a pair's chosen and rejected are 2k and 2k+1).
    The first label of every sample is IGNORE_INDEX, so the shifted loss never predicts a sample's first token
    from the previous sample: per-token losses equal those of the samples run one by one.
    `mask_format`: "bool" (4D bool), "additive" (4D float for eager), "flex" (attention_mask None and
    `segment_ids` `[B,L]`, which `sailvl.train.step.to_device` turns into a flex_attention BlockMask on the
    device, so masked-out blocks are skipped rather than computed) or "none" (attention_mask None; for
    flash-attention varlen, which derives sequence boundaries from position_ids as transformers' flattening
    collator expects).
    """
    rows = len(packs)
    input_ids = torch.full((rows, max_tokens), pad_token_id, dtype=torch.long)
    labels = torch.full((rows, max_tokens), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((rows, max_tokens), dtype=torch.long)
    segments = torch.full((rows, max_tokens), -1, dtype=torch.long)
    sequences = torch.full((rows, max_tokens), -1, dtype=torch.long)
    sample_ids, ordered, lengths, tiles = [], [], [], []
    for r, pack in enumerate(packs):
        offset, s = 0, 0
        for item in pack:
            if offset + item.length > max_tokens:
                raise ValueError(f"pack overflows max_tokens={max_tokens}")
            for start, n, n_tiles in item.spans():
                input_ids[r, offset : offset + n] = item.input_ids[start : start + n]
                labels[r, offset : offset + n] = item.labels[start : start + n]
                labels[r, offset] = IGNORE_INDEX
                position_ids[r, offset : offset + n] = torch.arange(n)
                segments[r, offset : offset + n] = s
                sequences[r, offset : offset + n] = len(lengths)
                lengths.append(n)
                tiles.append(n_tiles)
                offset, s = offset + n, s + 1
            sample_ids.append(item.sample_id)
            ordered.append(item)
    batch = {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "attention_mask": None,
        "pixel_values": _pixels(ordered),
        "num_target_tokens": int((labels != IGNORE_INDEX).sum()),
        "sample_ids": sample_ids,
        "sample_lengths": lengths,
        "sample_tiles": tiles,
        "num_real_tokens": int((segments >= 0).sum()),
    }
    if any(it.parts for it in ordered):  # preference pairs: which sequence each token belongs to
        batch["sequence_ids"] = sequences
    if mask_format == "flex":
        batch["segment_ids"] = segments
    elif mask_format != "none":
        mask = block_causal_mask(segments)
        batch["attention_mask"] = as_additive_mask(mask) if mask_format == "additive" else mask
    return batch


def collate_padded(items: list[PackItem], pad_token_id: int) -> dict:
    """One sequence per row (a preference pair: two rows), right-padded to the longest (the pad-to-longest
    baseline); 2D attention mask; with pairs, `sequence_ids` as in `collate_packs` (here the row index)."""
    spans = [(it, start, n, n_tiles) for it in items for start, n, n_tiles in it.spans()]
    length = max(n for _, _, n, _ in spans)
    rows = len(spans)
    input_ids = torch.full((rows, length), pad_token_id, dtype=torch.long)
    labels = torch.full((rows, length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((rows, length), dtype=torch.long)
    for r, (item, start, n, _) in enumerate(spans):
        input_ids[r, :n] = item.input_ids[start : start + n]
        labels[r, :n] = item.labels[start : start + n]
        labels[r, 0] = IGNORE_INDEX
        attention_mask[r, :n] = 1
    batch = {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": torch.arange(length).expand(rows, length).clone(),
        "attention_mask": attention_mask,
        "pixel_values": _pixels(items),
        "num_target_tokens": int((labels != IGNORE_INDEX).sum()),
        "sample_ids": [it.sample_id for it in items],
        "sample_lengths": [n for _, _, n, _ in spans],
        "sample_tiles": [t for _, _, _, t in spans],
        "num_real_tokens": int(attention_mask.sum()),
    }
    if any(it.parts for it in items):
        batch["sequence_ids"] = torch.where(attention_mask.bool(), torch.arange(rows)[:, None], -1)
    return batch
