"""Ray Data executor: the same pipeline gives the same kept set and complete lineage as the local one."""

from __future__ import annotations

from pathlib import Path

import pytest
from _curation_helpers import CHEAP_STEPS, make_pipeline, write_corpus

from sailvl.curation.executors import LocalExecutor
from sailvl.curation.lineage import check_lineage, iter_lineage, read_kept

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_matches_local(tmp_path):
    data, ids = write_corpus(tmp_path, 24, dup_every=5, bad_every=7)
    steps = CHEAP_STEPS + [{"type": "test_shout", "batch_size": 3}]
    LocalExecutor(make_pipeline(data, tmp_path / "local", steps)).run()
    # Workers unpickle the test-only step class, so they need this directory on their path.
    tests_dir = str(Path(__file__).parent)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": tests_dir}})  # fmt: skip
    try:
        cfg = make_pipeline(data, tmp_path / "ray", steps, executor={"type": "ray", "model_replicas": 1})
        from sailvl.curation.executors import run_pipeline

        manifest = run_pipeline(cfg)
    finally:
        ray.shutdown()
    assert check_lineage(tmp_path / "ray", ids).ok
    assert [s.id for s in read_kept(tmp_path / "ray")] == [s.id for s in read_kept(tmp_path / "local")]
    local_fates = {r["id"]: r for r in iter_lineage(tmp_path / "local")}
    ray_fates = {r["id"]: r for r in iter_lineage(tmp_path / "ray")}
    assert ray_fates == local_fates and manifest["kept"] == len(list(read_kept(tmp_path / "local")))
    assert sum(r.get("reason") == "model_says_no" for r in ray_fates.values()) > 0
    assert all(s.conversation[-1]["content"].isupper() for s in read_kept(tmp_path / "ray"))
