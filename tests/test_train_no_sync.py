"""The no-host-sync step (`sync=False`) reads nothing back from the device, on one rank and on two (gloo, FSDP2),
and trains exactly as the synced step does (CPU; `HostReads` counts what would be host syncs on a GPU)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _train_helpers import HostReads, make_packed_batch

from sailvl.train.parallel import DistInfo, init_distributed, parallelize
from sailvl.train.step import train_step

STEPS = 3


def _micro_batches(step: int, rank: int) -> list[dict]:
    return [make_packed_batch(100 * step + 10 * rank + j, tiles=1 + j) for j in range(2)]


def _run(info: DistInfo, sync: bool, micro_batches) -> tuple[list[float], list[list], list[dict]]:
    """Losses, the step's own host reads per step, and the counts of a fresh tiny model trained STEPS steps."""
    from sailvl.model import build_model

    torch.manual_seed(0)
    model = build_model("tiny", seed=0).train()
    if info.mesh is not None:
        model = parallelize(model, info, torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    results, reads = [], []
    for step in range(STEPS):
        batches = micro_batches(step)
        with HostReads() as counter:
            results.append(train_step(model, optimizer, batches, info, torch.float32, 0.05, True, sync))
        reads.append([what for what, _ in counter.own_reads])
    counts = [
        {k: getattr(r, k) for k in ("target_tokens", "real_tokens", "samples", "tiles")} for r in results
    ]
    return [r.loss for r in results], reads, counts


def _rank(rank: int, port: int, out: dict) -> None:
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}
        | {"MASTER_PORT": str(port)}
    )
    torch.set_num_threads(1)
    info = init_distributed("gloo")
    try:
        out[rank] = {sync: _run(info, sync, lambda s: _micro_batches(s, rank)) for sync in (True, False)}
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks():
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(_free_port(), out), nprocs=2)
        return dict(out)


@pytest.mark.slow  # two spawned interpreters importing torch + transformers: ~25 s idle, more on a busy box
def test_two_rank_no_sync_step_reads_nothing_from_the_device(two_ranks):
    for rank in (0, 1):
        synced_reads, unsynced_reads = two_ranks[rank][True][1], two_ranks[rank][False][1]
        assert unsynced_reads == [[]] * STEPS, (rank, unsynced_reads)
        # The counter does see reads: the synced step reads the skip decision once per step.
        assert synced_reads == [["aten._local_scalar_dense.default"]] * STEPS, (rank, synced_reads)


@pytest.mark.slow
def test_two_rank_no_sync_step_trains_like_the_synced_step_and_one_process(two_ranks):
    synced, unsynced = two_ranks[0][True][0], two_ranks[0][False][0]
    assert unsynced == pytest.approx(synced, abs=1e-6, rel=0)
    assert two_ranks[1][False][0] == unsynced  # every rank reports the global loss
    # One process on both ranks' micro-batches: the same global batch, so the same normalised losses.
    single, _, single_counts = _run(DistInfo(), False, lambda s: _micro_batches(s, 0) + _micro_batches(s, 1))
    assert unsynced == pytest.approx(single, abs=1e-5, rel=0)
    # Counts are summed over ranks once, on the host: both ranks hold the one-process totals.
    assert two_ranks[0][False][2] == two_ranks[1][False][2] == single_counts
    assert single_counts[0]["tiles"] == 2 * (1 + 2) and single_counts[0]["samples"] == 4


def test_one_process_no_sync_step_reads_nothing_from_the_device():
    losses, reads, _ = _run(DistInfo(), False, lambda s: _micro_batches(s, 0))
    assert reads == [[]] * STEPS, reads
    synced, synced_reads, _ = _run(DistInfo(), True, lambda s: _micro_batches(s, 0))
    assert losses == pytest.approx(synced, abs=1e-6, rel=0)
    assert synced_reads == [["aten._local_scalar_dense.default"]] * STEPS


def test_target_layout_is_found_on_the_host_and_padded_per_row():
    """Row 0 predicts 5, 6, 7 from positions 0, 1, 3; row 1 predicts 8 from position 2 and is padded to 3
    (position 0, ignored label), so the LM head runs on 6 rows and the loss counts 4 targets."""
    from sailvl.config.constants import IGNORE_INDEX as X
    from sailvl.train.step import find_targets

    targets = find_targets(torch.tensor([[X, 5, 6, X, 7], [X, X, X, 8, X]]))
    assert targets.positions.tolist() == [[0, 1, 3], [2, 0, 0]]
    assert targets.labels.tolist() == [[5, 6, 7], [8, X, X]]
    assert (targets.count, targets.head_rows) == (4, 6)
    empty = find_targets(torch.full((2, 4), X))
    assert (empty.positions.shape, empty.count) == ((2, 0), 0)
