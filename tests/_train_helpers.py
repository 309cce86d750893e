"""Test helpers for the training engine: synthetic batches in the loader's format and a fake loader."""

from __future__ import annotations

import torch

from sailvl.config.constants import IGNORE_INDEX

IMAGE_TOKEN_ID = 5  # the tiny preset's <IMG_CONTEXT> without a tokenizer
TOKENS_PER_TILE = 16  # 112 px tiles, patch 14, pixel-shuffle 0.5


def make_batch(seed: int, length: int = 64, vocab: int = 512, tiles: int = 1) -> dict:
    """One packed row holding one sample: text, `tiles` image spans, and answer labels on the tail."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(20, vocab, (length,), generator=g)
    ids[4 : 4 + TOKENS_PER_TILE * tiles] = IMAGE_TOKEN_ID
    labels = torch.full((length,), IGNORE_INDEX)
    answer_start = 4 + TOKENS_PER_TILE * tiles + 8
    labels[answer_start:] = ids[answer_start:]
    # The answer is a function of the image colour, so the model can learn something real.
    colour = int(torch.randint(0, 3, (1,), generator=g))
    pixels = torch.zeros(tiles, 3, 112, 112)
    pixels[:, colour] = 1.0
    ids[answer_start:] = 100 + colour
    labels[answer_start:] = 100 + colour
    return {
        "input_ids": ids[None],
        "labels": labels[None],
        "position_ids": torch.arange(length)[None],
        "attention_mask": torch.ones(1, length, dtype=torch.long),
        "pixel_values": pixels,
        "num_target_tokens": int((labels[1:] != IGNORE_INDEX).sum()),
        "sample_ids": [f"s{seed}"],
        "sample_lengths": [length],
        "num_real_tokens": length,
    }


class FakeLoader:
    """Deterministic stream of make_batch batches, sharded round-robin over ranks, with exact resume state."""

    def __init__(self, rank: int = 0, world_size: int = 1, seed: int = 0):
        self.rank, self.world_size, self.seed, self.position = rank, world_size, seed, 0

    def __iter__(self):
        while True:
            index = self.position * self.world_size + self.rank
            self.position += 1
            yield make_batch(self.seed * 100003 + index)

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
