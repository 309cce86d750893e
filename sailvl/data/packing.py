"""Fitting encoded samples to max_tokens (truncate or drop), best-fit packing into rows of max_tokens, and
per-step packs balanced across ranks by a tokens + tiles cost."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from sailvl.config.constants import IGNORE_INDEX


@dataclass
class PackItem:
    """One encoded sample ready for packing; `draw` is its index in the worker's sample stream.

    A preference pair (`sailvl.data.preference`) is one item holding two sequences back to back (chosen, then
    rejected; `parts` their lengths, each with its own copy of the image tiles), so the packer never splits a
    pair; the collate gives each sequence its own segment.
    """

    draw: int
    sample_id: str
    input_ids: torch.Tensor  # [L] long
    labels: torch.Tensor  # [L] long, IGNORE_INDEX off answers
    pixel_values: torch.Tensor  # [n_tiles, 3, T, T]
    num_tiles: int
    parts: tuple[int, ...] = ()  # lengths of the sequences of a preference pair; () for one sequence

    @property
    def length(self) -> int:
        """Tokens in the sample."""
        return int(self.input_ids.numel())

    def spans(self) -> list[tuple[int, int, int]]:
        """(start, tokens, tiles) of each sequence the item holds (a pair's tiles split evenly between its two)."""
        if not self.parts:
            return [(0, self.length, self.num_tiles)]
        starts = [sum(self.parts[:k]) for k in range(len(self.parts))]
        tiles = self.num_tiles // len(self.parts)
        return [(start, n, tiles) for start, n in zip(starts, self.parts, strict=True)]


def fit_to_length(
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    pixel_values: torch.Tensor,
    num_tiles: list[int],
    max_tokens: int,
    img_start_id: int,
    img_end_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None:
    """Cut a sample to `max_tokens` without splitting an image span; drops the tiles of images cut away.

    Returns (input_ids, labels, pixel_values, total tiles) or None when nothing trainable remains.
    """
    if input_ids.numel() <= max_tokens:
        return input_ids, labels, pixel_values, int(sum(num_tiles))
    starts = (input_ids == img_start_id).nonzero().flatten().tolist()
    ends = (input_ids == img_end_id).nonzero().flatten().tolist()
    cut, kept_images = max_tokens, len(starts)
    for k, (start, end) in enumerate(zip(starts, ends, strict=False)):
        if end >= cut:  # the span does not fit whole: cut just before it, dropping it and later images
            cut, kept_images = min(cut, start), k
            break
    labels = labels[:cut]
    if not bool((labels[1:] != IGNORE_INDEX).any()):
        return None
    tiles = int(sum(num_tiles[:kept_images]))
    return input_ids[:cut], labels, pixel_values[:tiles], tiles


class BestFitPacker:
    """Streams PackItems into packs of at most `max_tokens` tokens and `max_tiles` tiles.

    Holds up to `buffer_size` items; each emitted pack starts with the oldest buffered item (so nothing waits
    forever) and is filled with the longest buffered items that still fit. Deterministic for a given stream.
    """

    def __init__(self, max_tokens: int, max_tiles: int, buffer_size: int):
        self.max_tokens = max_tokens
        self.max_tiles = max_tiles
        self.buffer_size = buffer_size
        self._by_length: list[tuple[int, int]] = []  # (length, draw), sorted
        self._items: dict[int, PackItem] = {}

    def pending(self) -> list[PackItem]:
        """Buffered items in stream order."""
        return [self._items[d] for d in sorted(self._items)]

    def add(self, item: PackItem) -> list[list[PackItem]]:
        """Buffer one item (must fit max_tokens / max_tiles alone); returns the packs now complete."""
        if item.length > self.max_tokens or item.num_tiles > self.max_tiles:
            raise ValueError(
                f"sample {item.sample_id} does not fit one pack ({item.length} tokens, {item.num_tiles} tiles)"
            )
        bisect.insort(self._by_length, (item.length, item.draw))
        self._items[item.draw] = item
        packs = []
        while len(self._items) >= self.buffer_size:
            packs.append(self._emit())
        return packs

    def flush(self) -> list[list[PackItem]]:
        """Emit every buffered item (end of a finite stream)."""
        packs = []
        while self._items:
            packs.append(self._emit())
        return packs

    def _take(self, length: int, draw: int) -> PackItem:
        self._by_length.pop(bisect.bisect_left(self._by_length, (length, draw)))
        return self._items.pop(draw)

    def _emit(self) -> list[PackItem]:
        oldest = self._items[min(self._items)]
        pack = [self._take(oldest.length, oldest.draw)]
        room, tiles_left = self.max_tokens - oldest.length, self.max_tiles - oldest.num_tiles
        while room > 0 and self._by_length:
            # Longest item that fits the remaining room; walk down past items with too many tiles.
            i = bisect.bisect_right(self._by_length, (room, float("inf"))) - 1
            while i >= 0 and self._items[self._by_length[i][1]].num_tiles > tiles_left:
                i -= 1
            if i < 0:
                break
            length, draw = self._by_length[i]
            item = self._take(length, draw)
            pack.append(item)
            room, tiles_left = room - length, tiles_left - item.num_tiles
        pack.sort(key=lambda it: it.draw)
        return pack


def pack_cost(pack: list[PackItem], token_cost: float, tile_cost: float) -> float:
    """Cost of one pack under the linear model `token_cost * tokens + tile_cost * tiles`."""
    return sum(token_cost * it.length + tile_cost * it.num_tiles for it in pack)


def balance_packs(
    packs: list[list[PackItem]],
    max_tokens: int,
    max_tiles: int,
    token_cost: float = 1.0,
    tile_cost: float = 0.0,
    rounds: int = 256,
) -> list[list[PackItem]]:
    """Even out the costs (`pack_cost`) of one step's packs, one pack per rank, by moving and swapping samples.

    Each round takes the costliest pack and, from the cheapest partner up, the move of one sample or swap of two
    that narrows their gap most while both packs stay within `max_tokens` and `max_tiles`; it stops when no move
    helps. The largest cost never grows, the same samples stay in the step (packing efficiency unchanged), and
    LLM tokens and ViT tiles both count, so one rank is not handed every many-tile sample (OmniBal / VeOmni-style
    balance; the ranks' packs must come from one shared stream for this).
    """
    packs = [list(p) for p in packs]

    def cost(it: PackItem) -> float:
        return token_cost * it.length + tile_cost * it.num_tiles

    def room(pack: list[PackItem], add: PackItem | None, drop: PackItem | None) -> bool:
        tokens = sum(it.length for it in pack) + (add.length if add else 0) - (drop.length if drop else 0)
        tiles = (
            sum(it.num_tiles for it in pack) + (add.num_tiles if add else 0) - (drop.num_tiles if drop else 0)
        )
        return tokens <= max_tokens and tiles <= max_tiles

    for _ in range(rounds):
        costs = [pack_cost(p, token_cost, tile_cost) for p in packs]
        hi = max(range(len(packs)), key=lambda r: costs[r])
        best = None
        for lo in sorted(range(len(packs)), key=lambda r: costs[r]):
            gap = costs[hi] - costs[lo]
            if lo == hi or gap <= 0:
                continue
            for a in packs[hi]:
                for b in [None, *packs[lo]]:
                    delta = cost(a) - (cost(b) if b else 0.0)
                    if 0 < delta < gap and room(packs[lo], a, b) and room(packs[hi], b, a):
                        score = abs(gap - 2 * delta)
                        if best is None or score < best[0]:
                            best = (score, lo, a, b)
            if best is not None:
                break
        if best is None:
            break
        _, lo, a, b = best
        packs[hi].remove(a)
        packs[lo].append(a)
        if b is not None:
            packs[lo].remove(b)
            packs[hi].append(b)
    for pack in packs:
        pack.sort(key=lambda it: it.draw)
    return packs
