"""Mixture sampling from (seed, rank, worker, step) and the per-worker shard of each source, epoch after epoch."""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Iterator
from typing import Any

from sailvl.data.config import SourceConfig
from sailvl.data.readers import iter_raw, list_files
from sailvl.errors import SailvlError


def unit_random(*key: int) -> float:
    """A uniform number in [0, 1) that depends only on the integers in `key` (same in every process)."""
    digest = hashlib.blake2b(":".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def count_records(source: SourceConfig) -> int:
    """Number of records of a source (one streaming pass; parquet and HF datasets read metadata only)."""
    files = list_files(source.format, source.path)
    if source.format == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    if source.format == "hf_disk":
        import datasets

        return sum(datasets.load_from_disk(f).num_rows for f in files)
    return sum(1 for f in files for _ in iter_raw(source.format, f))


def mixture_weights(sources: list[SourceConfig]) -> list[float]:
    """Sampling probabilities: `weight`, or `repeat` x record count, normalised to sum to 1."""
    raw = []
    for source in sources:
        if source.repeat is not None:
            raw.append(source.repeat * count_records(source))
        else:
            raw.append(1.0 if source.weight is None else source.weight)
    total = sum(raw)
    if total <= 0:
        raise SailvlError("the data mixture has no records: every source with `repeat` is empty")
    return [w / total for w in raw]


class MixtureSampler:
    """Picks the source of each draw from (seed, rank, worker, step): stateless, so resuming needs only the step."""

    def __init__(self, weights: list[float], seed: int, rank: int, worker: int):
        self.cumulative = []
        acc = 0.0
        for w in weights:
            acc += w
            self.cumulative.append(acc)
        self.key = (seed, rank, worker)

    def choose(self, step: int) -> int:
        """Index of the source for draw number `step`."""
        u = unit_random(*self.key, step) * self.cumulative[-1]
        return min(bisect.bisect_right(self.cumulative, u), len(self.cumulative) - 1)


class ShardStream:
    """The records of one source that belong to shard `shard` of `num_shards` (= rank x workers), epoch after epoch.

    With at least as many files as shards, files are dealt out (in an order shuffled per epoch); otherwise
    record g of the source goes to shard g % num_shards. Every record lands in exactly one shard per epoch.
    Records are shuffled within blocks of `shuffle_block`, seeded by (seed, source, epoch, shard, block), so a
    position inside an epoch is enough to resume.
    """

    def __init__(
        self,
        source: SourceConfig,
        source_index: int,
        shard: int,
        num_shards: int,
        seed: int,
        shuffle_block: int,
        epoch: int = 0,
        position: int = 0,
    ):
        self.source = source
        self.files = list_files(source.format, source.path)
        self.key = (seed, source_index, shard)
        self.shard, self.num_shards = shard, num_shards
        self.shuffle_block = shuffle_block
        self.epoch, self.position = epoch, position
        self._iter = self._skip(self._epoch_records(epoch), position)

    def state(self) -> dict[str, int]:
        """Epoch and the number of this shard's records already taken in it."""
        return {"epoch": self.epoch, "position": self.position}

    def _epoch_records(self, epoch: int) -> Iterator[Any]:
        seed, source_index, shard = self.key
        if len(self.files) >= self.num_shards:
            files = list(self.files)
            random.Random(unit_random(seed, source_index, epoch)).shuffle(files)
            mine = (raw for f in files[shard :: self.num_shards] for raw in iter_raw(self.source.format, f))
        else:
            mine = (
                raw
                for g, raw in enumerate(raw for f in self.files for raw in iter_raw(self.source.format, f))
                if g % self.num_shards == shard
            )
        if self.shuffle_block <= 1:
            yield from mine
            return
        block: list[Any] = []
        block_index = 0
        for raw in mine:
            block.append(raw)
            if len(block) == self.shuffle_block:
                random.Random(unit_random(seed, source_index, epoch, shard, block_index)).shuffle(block)
                yield from block
                block, block_index = [], block_index + 1
        random.Random(unit_random(seed, source_index, epoch, shard, block_index)).shuffle(block)
        yield from block

    @staticmethod
    def _skip(records: Iterator[Any], count: int) -> Iterator[Any]:
        for _ in range(count):
            next(records, None)
        return records

    def next_raw(self) -> tuple[int, int, Any]:
        """(epoch, position, raw record) of the next record, starting a new epoch when this one is done."""
        raw = next(self._iter, _END)
        if raw is _END:
            if self.position == 0:
                raise SailvlError(
                    f"source {self.source.display_name} has no records for shard {self.shard} of "
                    f"{self.num_shards}; use fewer ranks or workers, or more data"
                )
            self.epoch, self.position = self.epoch + 1, 0
            self._iter = self._epoch_records(self.epoch)
            return self.next_raw()
        self.position += 1
        return self.epoch, self.position - 1, raw

    def raws_at(self, epoch: int, positions: list[int]) -> dict[int, Any]:
        """Re-read the raw records at `positions` of `epoch` (one pass; used to restore buffered samples)."""
        wanted, found = set(positions), {}
        for pos, raw in enumerate(self._epoch_records(epoch)):
            if pos in wanted:
                found[pos] = raw
                if len(found) == len(wanted):
                    break
        return found


_END = object()
