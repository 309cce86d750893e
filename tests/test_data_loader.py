"""Loader: mixture frequencies, sharding by rank and worker, exact resume, bad records."""

import itertools
import json
from collections import Counter

import pytest
from _data_helpers import png_bytes, synthetic_samples, write_internvl_jsonl

from sailvl.config import parse_config
from sailvl.data.config import DataConfig, SourceConfig
from sailvl.data.loader import build_loader
from sailvl.data.mixture import MixtureSampler, ShardStream, mixture_weights
from sailvl.data.writers import write_webdataset
from sailvl.errors import ConfigError, SailvlError


def test_mixture_frequencies_match_weights():
    weights = mixture_weights([SourceConfig(path="a", weight=w) for w in (5.0, 3.0, 2.0)])
    observed = Counter()
    for rank, worker in itertools.product(range(2), range(2)):
        sampler = MixtureSampler(weights, seed=7, rank=rank, worker=worker)
        observed.update(sampler.choose(step) for step in range(2500))
    for index, weight in enumerate(weights):
        assert abs(observed[index] / 10_000 - weight) < 0.02
    again = MixtureSampler(weights, seed=7, rank=1, worker=0)
    assert [again.choose(s) for s in range(50)] == [
        MixtureSampler(weights, 7, 1, 0).choose(s) for s in range(50)
    ]


def test_repeat_weights_scale_with_source_size(tmp_path):
    write_internvl_jsonl(synthetic_samples(30, "a", images=False), tmp_path, "a")
    write_internvl_jsonl(synthetic_samples(10, "b", images=False), tmp_path, "b")
    sources = [
        SourceConfig(path=str(tmp_path / "a.jsonl"), repeat=1),
        SourceConfig(path=str(tmp_path / "b.jsonl"), repeat=3),
    ]
    assert mixture_weights(sources) == pytest.approx([0.5, 0.5])
    with pytest.raises(ConfigError, match="either weight or repeat"):
        parse_config(DataConfig, {"sources": [{"path": "x", "weight": 1, "repeat": 2}]})


@pytest.mark.parametrize("layout", ["records", "files"])
def test_shards_cover_each_record_exactly_once_per_epoch(tmp_path, layout):
    samples = synthetic_samples(37, "s", images=False)
    if layout == "records":
        write_internvl_jsonl(samples, tmp_path, "s")
        source = SourceConfig(path=str(tmp_path / "s.jsonl"))
    else:
        write_webdataset(samples, tmp_path / "wds", shard_size=4)  # 10 files for 6 shards
        source = SourceConfig(path=str(tmp_path / "wds"), format="webdataset")
    seen, epoch_two = [], []
    for shard in range(6):  # 3 ranks x 2 workers
        stream = ShardStream(source, 0, shard, 6, seed=1, shuffle_block=5)
        while True:
            epoch, _, raw = stream.next_raw()
            if epoch > 0:
                break
            seen.append(json.loads(raw[2] if layout == "records" else raw["json"])["id"])
        epoch_two.append(stream.epoch)
    assert sorted(seen) == sorted(s.id for s in samples)
    assert epoch_two == [1] * 6


def _resume_config(tmp_path):
    write_internvl_jsonl(synthetic_samples(48, "a", seed=1), tmp_path, "a")
    write_webdataset(synthetic_samples(32, "b", seed=2), tmp_path / "b", shard_size=5)
    return DataConfig(
        sources=[
            {"path": str(tmp_path / "a.jsonl"), "image_root": str(tmp_path), "weight": 2},
            {"path": str(tmp_path / "b"), "format": "webdataset", "max_tiles": 2, "task": "vqa"},
        ],
        max_tokens=512,
        pack_buffer=6,
        packs_per_batch=2,
        shuffle_block=4,
        num_workers=2,
    )


def test_resume_two_ranks_two_workers_matches_uninterrupted_run(tmp_path, tiny_processor):
    config = _resume_config(tmp_path)
    total, stop = 7, 3
    for rank in range(2):
        uninterrupted = list(itertools.islice(build_loader(config, tiny_processor, rank, 2, seed=5), total))
        first = build_loader(config, tiny_processor, rank, 2, seed=5)
        head = list(itertools.islice(first, stop))
        state = json.loads(json.dumps(first.state_dict()))  # the state must survive a JSON round trip
        resumed = build_loader(config, tiny_processor, rank, 2, seed=5)
        resumed.load_state_dict(state)
        tail = list(itertools.islice(resumed, total - stop))
        ids = [b["sample_ids"] for b in head + tail]
        assert ids == [b["sample_ids"] for b in uninterrupted]
        assert (tail[-1]["input_ids"] == uninterrupted[-1]["input_ids"]).all()
        assert all(sid.split("/")[0] in ("a", "b") for batch in ids for sid in batch)
    other_rank = [
        b["sample_ids"] for b in itertools.islice(build_loader(config, tiny_processor, 0, 2, seed=5), 2)
    ]
    assert other_rank != ids[:2]


def test_state_is_checked_against_the_loader(tmp_path, tiny_processor):
    config = _resume_config(tmp_path)
    state = build_loader(config, tiny_processor, 0, 2, seed=5).state_dict()
    with pytest.raises(SailvlError, match="rank"):
        build_loader(config, tiny_processor, 1, 2, seed=5).load_state_dict(state)


def test_unpacked_batches_pad_to_longest(tmp_path, tiny_processor):
    write_internvl_jsonl(synthetic_samples(12, "a", seed=4), tmp_path, "a")
    config = DataConfig(
        sources=[{"path": str(tmp_path / "a.jsonl"), "image_root": str(tmp_path)}],
        max_tokens=512, packing=False, batch_size=3, num_workers=0,
    )  # fmt: skip
    batch = next(iter(build_loader(config, tiny_processor)))
    assert batch["input_ids"].shape[0] == 3 and batch["attention_mask"].dim() == 2
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max())


def _bad_record_source(tmp_path, kind):
    """Eight good InternVL records plus one bad record of `kind` (id 'bad')."""
    good = synthetic_samples(8, "g", seed=9)
    path = write_internvl_jsonl(good, tmp_path, "data")
    (tmp_path / "images" / "ok.png").write_bytes(png_bytes(1))
    record = {"id": "bad", "image": "images/ok.png", "conversations": [
        {"from": "human", "value": "<image>\nwhat"}, {"from": "gpt", "value": "red"}]}  # fmt: skip
    line = None
    if kind == "image_missing":
        record["image"] = "images/none.png"
    elif kind == "image_corrupt":
        (tmp_path / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        record["image"] = "images/corrupt.png"
    elif kind == "image_empty":
        (tmp_path / "images" / "empty.png").write_bytes(b"")
        record["image"] = "images/empty.png"
    elif kind == "bad_json":
        line = '{"id": "bad", "conversations": [\n'
    elif kind == "image_count_mismatch":
        record["conversations"][0]["value"] = "<image>\n<image>\nwhat"
    elif kind == "empty_answer":
        record["conversations"][1]["value"] = "  "
    elif kind == "too_long":
        record["conversations"][1]["value"] = " ".join(["blue star"] * 400)
    with open(path, "a") as fh:
        fh.write(line if line is not None else json.dumps(record) + "\n")
    return path


KINDS = [
    "image_missing",
    "image_corrupt",
    "image_empty",
    "bad_json",
    "image_count_mismatch",
    "empty_answer",
    "too_long",
]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_record_is_skipped_and_counted(tmp_path, tiny_processor, kind):
    path = _bad_record_source(tmp_path, kind)
    config = DataConfig(
        sources=[{"path": str(path), "image_root": str(tmp_path)}],
        max_tokens=512, pack_buffer=2, num_workers=0, long_samples="drop", min_records_before_abort=1000,
    )  # fmt: skip
    loader = build_loader(config, tiny_processor)
    ids = []
    for batch in loader:
        ids += batch["sample_ids"]
        if loader.bad_records().seen >= 20:
            break
    bad = loader.bad_records()
    assert bad.counts == {kind: bad.num_bad} and bad.num_bad >= 1
    assert "bad" in bad.examples[kind] or "data:8" in bad.examples[kind]
    assert not any(sid.endswith("/bad") for sid in ids) and len(set(ids)) == 8
    assert kind in loader.report()


def test_too_many_bad_records_abort_with_a_clear_message(tmp_path, tiny_processor):
    (tmp_path / "all_bad.jsonl").write_text("".join("not json\n" for _ in range(20)))
    config = DataConfig(
        sources=[{"path": str(tmp_path / "all_bad.jsonl")}], max_tokens=512, num_workers=0,
        max_bad_fraction=0.5, min_records_before_abort=10,
    )  # fmt: skip
    with pytest.raises(SailvlError, match=r"10 of 10 records were bad \(bad_json"):
        next(iter(build_loader(config, tiny_processor)))
