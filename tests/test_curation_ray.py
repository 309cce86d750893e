"""Ray executor: the same per-shard routine as the local one, so kept ids, lineage and manifest statistics
are identical; an actor killed mid-shard fails only its shard, and a rerun finishes every input once."""

from __future__ import annotations

from pathlib import Path

import pytest
from _curation_helpers import CHEAP_STEPS, make_pipeline, write_corpus

from sailvl.curation.executors import LocalExecutor, run_pipeline
from sailvl.curation.lineage import check_lineage, iter_lineage, read_kept
from sailvl.curation.ray_executor import ray_worker_count
from sailvl.errors import SailvlError


def test_ray_worker_count(tmp_path):
    cheap = make_pipeline(tmp_path / "x.jsonl", tmp_path / "run", CHEAP_STEPS)
    model = make_pipeline(tmp_path / "x.jsonl", tmp_path / "run", [{"type": "test_shout"}])
    assert ray_worker_count(cheap, {"CPU": 16, "GPU": 8}, 100) == (16, 0)  # no model: GPUs stay free
    assert ray_worker_count(model, {"CPU": 16, "GPU": 8}, 100) == (8, 1)  # one model replica per GPU
    assert ray_worker_count(model, {"CPU": 16, "GPU": 8}, 3) == (3, 1)  # never more actors than shards
    assert ray_worker_count(model, {"CPU": 4}, 100) == (4, 0)
    replicas = make_pipeline(
        tmp_path / "x.jsonl", tmp_path / "run", [{"type": "test_shout"}], executor={"model_replicas": 2}
    )
    assert ray_worker_count(replicas, {"CPU": 16, "GPU": 8}, 100) == (2, 1)


@pytest.mark.slow
def test_ray_matches_local_and_resumes_after_a_killed_actor(tmp_path):
    ray = pytest.importorskip("ray")
    data, ids = write_corpus(tmp_path, 20, dup_every=5, bad_every=7)
    flag = tmp_path / "bug"
    steps = CHEAP_STEPS + [
        {"type": "test_shout", "batch_size": 3},
        {"type": "test_crash", "crash_at": "r0012", "mode": "kill", "while_exists": str(flag)},
    ]
    local = LocalExecutor(make_pipeline(data, tmp_path / "local", steps)).run()
    # Workers unpickle the test-only step classes, so they need this directory on their path.
    tests_dir = str(Path(__file__).parent)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": tests_dir}})  # fmt: skip
    cfg = make_pipeline(data, tmp_path / "ray", steps, executor={"type": "ray"})
    try:
        flag.touch()  # the actor running shard 2 is SIGKILLed at r0012
        with pytest.raises(SailvlError, match="1 of 4 shards failed"):
            run_pipeline(cfg)
        done = sorted(p.name for p in (tmp_path / "ray" / "done").glob("*.json"))
        assert done == ["shard-00000.json", "shard-00001.json", "shard-00003.json"]
        flag.unlink()  # "the bug is fixed": the rerun redoes shard 2 only
        manifest = run_pipeline(cfg)
    finally:
        ray.shutdown()
    report = check_lineage(tmp_path / "ray", ids)
    assert report.ok and report.kept + report.rejected == len(ids) and not report.repeated_ids
    assert [s.id for s in read_kept(tmp_path / "ray")] == [s.id for s in read_kept(tmp_path / "local")]
    assert list(iter_lineage(tmp_path / "ray")) == list(iter_lineage(tmp_path / "local"))
    assert manifest == local and manifest["steps"]["test_shout"]["rejected:model_says_no"] > 0
    assert all(s.conversation[-1]["content"].isupper() for s in read_kept(tmp_path / "ray"))
