"""Distribution-balanced reference subset: the quota rule, k-means, and the step as a global pass over a job
(balanced over a metadata field or over pHash clusters)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _curation_helpers import make_pipeline, write_corpus

from sailvl.curation.base import build_step
from sailvl.curation.executors import LocalExecutor
from sailvl.curation.lineage import check_lineage, read_kept
from sailvl.curation.select import balanced_quota, kmeans_labels
from sailvl.errors import ConfigError


def test_balanced_quota_water_fills():
    assert balanced_quota({"a": 100, "b": 100, "c": 100}, 30) == {"a": 10, "b": 10, "c": 10}
    # A small group gives all it has; the larger ones share the rest evenly.
    assert balanced_quota({"a": 2, "b": 100, "c": 100}, 30) == {"a": 2, "b": 14, "c": 14}
    q = balanced_quota({"a": 5, "b": 7, "c": 100}, 20)
    assert q == {"a": 5, "b": 7, "c": 8} and sum(q.values()) == 20
    assert balanced_quota({"a": 3, "b": 4}, 50) == {"a": 3, "b": 4}  # fewer records than asked for
    q = balanced_quota({"a": 10, "b": 10, "c": 10}, 4)
    assert sum(q.values()) == 4 and max(q.values()) - min(q.values()) == 1


def test_balanced_subset_step_over_shards(tmp_path):
    data, ids = write_corpus(tmp_path, 24)
    # Skewed groups: 16 records of "web", 6 of "ocr", 2 of "doc".
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    groups = ["web"] * 16 + ["ocr"] * 6 + ["doc"] * 2
    data.write_text(
        "".join(json.dumps({**r, "source_set": g}) + "\n" for r, g in zip(rows, groups, strict=True))
    )
    steps = [{"type": "balanced_subset", "size": 12, "field": "source_set"}]
    manifest = LocalExecutor(make_pipeline(data, tmp_path / "run", steps)).run()
    kept = list(read_kept(tmp_path / "run"))
    by_group = {g: sum(s.metadata.get("source_set") == g for s in kept) for g in ("web", "ocr", "doc")}
    assert by_group == {"web": 5, "ocr": 5, "doc": 2} and manifest["kept"] == 12
    report = check_lineage(tmp_path / "run", ids)
    assert report.ok and report.by_reason[("balanced_subset", "not_in_balanced_subset")] == 12


def test_kmeans_separates_clear_clusters():
    rng = np.random.default_rng(0)
    points = np.concatenate(
        [rng.normal(0, 0.1, (20, 4)), rng.normal(5, 0.1, (7, 4)), rng.normal(-5, 0.1, (3, 4))]
    )
    labels = kmeans_labels(points, 3)
    assert len(set(labels[:20])) == len(set(labels[20:27])) == len(set(labels[27:])) == 1
    assert len({labels[0], labels[20], labels[27]}) == 3


def test_balanced_subset_over_image_clusters(tmp_path):
    # 12 copies of one image and 4 of another, under distinct ids: two pHash clusters, 12 vs 4 records.
    data, ids = write_corpus(tmp_path, 16)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows = [{**r, "image": rows[0]["image"] if i < 12 else rows[1]["image"]} for i, r in enumerate(rows)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    steps = [{"type": "balanced_subset", "size": 8, "clusters": 2}]
    LocalExecutor(make_pipeline(data, tmp_path / "run", steps)).run()
    kept = [int(s.id[1:]) for s in read_kept(tmp_path / "run")]
    assert len(kept) == 8 and sum(i >= 12 for i in kept) == 4  # the small cluster is kept whole
    assert check_lineage(tmp_path / "run", ids).ok


def test_balanced_subset_needs_one_grouping():
    with pytest.raises(ConfigError, match="exactly one of `field`"):
        build_step({"type": "balanced_subset", "size": 3})
