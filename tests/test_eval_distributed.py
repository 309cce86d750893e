"""The eval's process group: joined from torchrun's environment and left when the run ends."""

from __future__ import annotations

import os
import socket

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from sailvl.eval.distributed import EvalShard, sharded_from_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    with sharded_from_env() as shard:
        joined = dist.is_initialized()
        merged = shard.gather({f"item-{rank}": f"answer-{rank}"})
    left = not dist.is_initialized()
    with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
        f.write(f"{shard.rank} {shard.world_size} {joined} {left} {sorted(merged) if merged else None}")


def test_a_torchrun_rank_joins_the_group_gathers_on_rank_0_and_leaves_it(tmp_path):
    mp.spawn(_rank_main, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "rank0.txt").read_text() == "0 2 True True ['item-0', 'item-1']"
    assert (tmp_path / "rank1.txt").read_text() == "1 2 True True None"


def test_one_process_joins_nothing_and_keeps_a_group_it_found(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with sharded_from_env() as shard:
        assert shard == EvalShard() and not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with sharded_from_env() as shard:
            assert shard.world_size == 1
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def test_a_failing_run_still_leaves_the_group_it_joined(monkeypatch):
    def join() -> EvalShard:
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        return EvalShard()

    monkeypatch.setattr("sailvl.eval.distributed.shard_from_env", join)
    with pytest.raises(RuntimeError, match="boom"), sharded_from_env():
        assert dist.is_initialized()
        raise RuntimeError("boom")
    assert not dist.is_initialized()
