"""Readers and writers: every format reads the same synthetic data back to the same Samples."""

import json

import pytest
from _data_helpers import png_bytes, synthetic_samples, write_internvl_jsonl

from sailvl.data.bad_records import BadRecordCounter
from sailvl.data.readers import read_hf_disk, read_jsonl, read_parquet, read_source, read_webdataset
from sailvl.data.sample import Sample, sample_from_record
from sailvl.data.writers import image_bytes, write_hf_disk, write_jsonl, write_parquet, write_webdataset
from sailvl.errors import SailvlError


def _canonical(samples):
    """Samples with images as bytes and the InternVL extra field dropped, for comparison across formats."""
    return [(s.id, s.source, [image_bytes(im) for im in s.images], s.conversation) for s in samples]


def test_all_formats_read_the_same_samples(tmp_path):
    samples = synthetic_samples(23, source="mix", seed=3)
    assert any(len(s.images) == 2 for s in samples) and any(not s.images for s in samples)
    write_internvl_jsonl(samples, tmp_path / "internvl")
    write_jsonl(samples, tmp_path / "native.jsonl", image_dir=tmp_path / "native_images")
    shards = write_webdataset(samples, tmp_path / "wds", shard_size=10)
    write_parquet(samples, tmp_path / "data.parquet", rows_per_group=7)
    write_hf_disk(samples, tmp_path / "hf")
    assert len(shards) == 3
    expected = _canonical(samples)
    read = {
        "internvl": read_jsonl(
            tmp_path / "internvl" / "data.jsonl", image_root=str(tmp_path / "internvl"), source="mix"
        ),
        "native": read_jsonl(tmp_path / "native.jsonl"),
        "webdataset": read_webdataset(str(tmp_path / "wds")),
        "parquet": read_parquet(tmp_path / "data.parquet"),
        "hf_disk": read_hf_disk(tmp_path / "hf"),
    }
    for name, stream in read.items():
        assert _canonical(list(stream)) == expected, name
    assert [s.metadata for s in read_parquet(tmp_path / "data.parquet")] == [s.metadata for s in samples]


def test_readers_stream_lazily(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "w") as fh:
        fh.write(json.dumps({"id": "0", "conversations": [{"from": "human", "value": "hi"}]}) + "\n")
        fh.write("{ this line is cut")
    stream = read_jsonl(path)
    assert next(stream).id == "0"  # the first record arrives before the bad line is ever parsed
    with pytest.raises(SailvlError, match="bad_json"):
        next(stream)


def test_openai_messages_with_typed_content():
    record = {
        "id": "m1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "image", "image": "a.png"}, {"type": "text", "text": "What is this?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "A star."}]},
        ],
    }
    sample = sample_from_record(record, "oa", "fallback", image_root="/data")
    assert sample.images == ["/data/a.png"]
    assert [t["role"] for t in sample.conversation] == ["system", "user", "assistant"]
    assert sample.conversation[1]["content"] == "<image>\nWhat is this?"
    assert sample.conversation[2]["content"] == "A star."
    plain = sample_from_record({"messages": [{"role": "user", "content": "hi"}]}, "oa", "l3")
    assert plain.id == "l3" and plain.images == []


def test_llava_schema_and_unknown_speaker():
    record = {
        "image": "x.jpg",
        "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}],
    }
    sample = sample_from_record(record, "llava", "llava:0")
    assert sample.images == ["x.jpg"] and sample.conversation[1] == {"role": "assistant", "content": "A"}
    with pytest.raises(ValueError, match="speaker"):
        sample_from_record({"conversations": [{"from": "robot", "value": "x"}]}, "s", "i")


def test_sample_json_round_trip_keeps_bytes_and_paths():
    sample = Sample(
        "id/1", "src", [png_bytes(1), "rel/path.png"], [{"role": "user", "content": "<image>"}], {"k": [1]}
    )
    assert Sample.from_json(sample.to_json()) == sample


def test_unreadable_lines_are_counted_not_fatal(tmp_path):
    path = tmp_path / "d.jsonl"
    good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    path.write_text(
        json.dumps(good) + "\nnot json\n" + json.dumps({"nothing": 1}) + "\n" + json.dumps(good) + "\n"
    )
    bad = BadRecordCounter()
    samples = list(read_source("jsonl", path, bad=bad))
    assert [s.id for s in samples] == ["d:0", "d:3"]
    assert bad.counts == {"bad_json": 1, "bad_schema": 1}
    assert bad.examples["bad_json"] == "d:1"


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(SailvlError, match="does not exist"):
        list(read_parquet(tmp_path / "nope.parquet"))
