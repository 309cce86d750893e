"""Sharded eval across processes (torchrun): which items a rank predicts, and gathering predictions on rank 0."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch.distributed as dist


@dataclass(frozen=True)
class EvalShard:
    """Rank `rank` of `world_size` predicts the items at positions rank, rank + world, ...; rank 0 scores."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, position: int) -> bool:
        """Whether this rank predicts the item at `position` (0-based, in benchmark order)."""
        return position % self.world_size == self.rank

    def gather(self, records: dict[str, str]) -> dict[str, str] | None:
        """Every rank's records merged on rank 0 (None elsewhere); a plain copy without sharding."""
        if self.world_size == 1:
            return dict(records)
        parts: list[dict[str, str]] | None = [{} for _ in range(self.world_size)] if self.is_main else None
        dist.gather_object(records, parts, dst=0)
        if not self.is_main:
            return None
        merged: dict[str, str] = {}
        for part in parts:
            merged.update(part)
        return merged

    def device_for(self, device: str) -> str:
        """`cuda` means this rank's own GPU (LOCAL_RANK) when sharded; other devices are kept."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.world_size > 1 else device


@contextmanager
def sharded_from_env() -> Iterator[EvalShard]:
    """`shard_from_env()` for the length of a run; a process group it joined is left at the end.

    Leaving matters: a rank that exits with a gloo group still alive may abort in interpreter teardown
    (SIGABRT, "terminate called without an active exception"), and torchrun then fails the whole run
    although rank 0 wrote every result. The barrier keeps a finished rank in the group until rank 0 has
    done its last collective, so no rank tears down a connection another still reads."""
    joined = not dist.is_initialized()
    shard = shard_from_env()
    try:
        yield shard
        if shard.world_size > 1:
            dist.barrier()
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()


def shard_from_env() -> EvalShard:
    """The shard of this process under torchrun (RANK / WORLD_SIZE set), else a single shard.

    Joins a gloo process group: the gathered objects are small Python dicts, so CPU transport suffices
    on GPU machines too."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return EvalShard()
    if not dist.is_initialized():
        # Rank 0 may judge a whole benchmark over an API while the others wait at the next gather.
        dist.init_process_group("gloo", timeout=timedelta(hours=12))
    return EvalShard(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
