"""A loader state names the data it was saved for: resuming on other data fails naming the change, unless told."""

from __future__ import annotations

import copy
import itertools
import json
import logging

import pytest
from _data_helpers import synthetic_samples, write_internvl_jsonl

from sailvl.data.config import DataConfig
from sailvl.data.loader import build_loader
from sailvl.data.processor import SailVLProcessor
from sailvl.errors import SailvlError


def _config(tmp_path, **changes) -> DataConfig:
    sources = [
        {"path": str(tmp_path / "a.jsonl"), "weight": 2},
        {"path": str(tmp_path / "b.jsonl"), "weight": 1},
    ]
    fields = {"sources": sources, "max_tokens": 256, "pack_buffer": 4, "shuffle_block": 4, "num_workers": 0}
    return DataConfig(**{**fields, **changes})


def _saved_state(tmp_path, processor) -> dict:
    write_internvl_jsonl(synthetic_samples(24, "a", seed=1, images=False), tmp_path, "a")
    write_internvl_jsonl(synthetic_samples(16, "b", seed=2, images=False), tmp_path, "b")
    loader = build_loader(_config(tmp_path), processor, seed=3)
    list(itertools.islice(loader, 2))
    return json.loads(json.dumps(loader.state_dict()))  # as a checkpoint stores it


def _append_records(tmp_path, processor):
    more = synthetic_samples(6, "extra", seed=5, images=False)
    write_internvl_jsonl(more, tmp_path / "more", "a")
    with open(tmp_path / "a.jsonl", "a") as handle:
        handle.write((tmp_path / "more" / "a.jsonl").read_text())
    return _config(tmp_path), processor


def _other_tokenizer(tmp_path, processor):
    tokenizer = copy.deepcopy(processor.tokenizer)
    tokenizer.add_tokens(["<new-token>"])
    changed = SailVLProcessor(tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=4)
    return _config(tmp_path), changed


def _weights(tmp_path, processor):
    sources = [
        {"path": str(tmp_path / "a.jsonl"), "weight": 3},
        {"path": str(tmp_path / "b.jsonl"), "weight": 1},
    ]
    return _config(tmp_path, sources=sources), processor


def _extra_source(tmp_path, processor):
    write_internvl_jsonl(synthetic_samples(8, "c", seed=6, images=False), tmp_path, "c")
    config = _config(tmp_path)
    sources = [*config.sources, {"path": str(tmp_path / "c.jsonl")}]
    return DataConfig(**{**config.model_dump(), "sources": sources}), processor


CHANGES = {
    "records appended": (_append_records, r"for source \S+/a.jsonl with 24 records; it now has 30"),
    "mixture weight": (_weights, "with mixture weights a 0.6667, b 0.3333; they are now a 0.75, b 0.25"),
    "pack length": (
        lambda t, p: (_config(t, max_tokens=512), p),
        r"with pack length \(max_tokens\) 256; it is now 512",
    ),
    "tokenizer": (
        _other_tokenizer,
        r"with a tokenizer of (\d+) tokens \(hash \w+\); this one has \d+ tokens",
    ),
    "source added": (_extra_source, r"for 2 sources \(a, b\); the data now has 3 \(a, b, c\)"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_resuming_on_changed_data_fails_naming_the_change(tmp_path, tiny_processor, change):
    state = _saved_state(tmp_path, tiny_processor)
    make, message = CHANGES[change]
    config, processor = make(tmp_path, tiny_processor)
    with pytest.raises(SailvlError, match=f"loader state was saved {message}.*--resume-ignore-data"):
        build_loader(config, processor, seed=3).load_state_dict(state)


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_override_resumes_and_logs_the_change(tmp_path, tiny_processor, change, caplog):
    state = _saved_state(tmp_path, tiny_processor)
    config, processor = CHANGES[change][0](tmp_path, tiny_processor)
    loader = build_loader(config, processor, seed=3, ignore_data_change=True)
    with caplog.at_level(logging.WARNING, logger="sailvl.data.loader"):
        loader.load_state_dict(state)
    assert "resuming anyway" in caplog.text
    positions = [w["sources"] for w in loader.worker_states.values()]
    if change == "source added":
        assert positions == []  # three sources cannot take two sources' positions: they start over
    else:
        assert positions == [w["sources"] for w in state["workers"].values()]  # where the saved run stopped
    assert next(iter(loader))["input_ids"].numel() > 0


def test_unchanged_data_resumes_and_versions_are_read(tmp_path, tiny_processor, caplog):
    state = _saved_state(tmp_path, tiny_processor)
    assert state["version"] == 2 and state["data"]["sources"][0]["records"] == 24
    build_loader(_config(tmp_path), tiny_processor, seed=3).load_state_dict(state)
    with pytest.raises(SailvlError, match="loader state version 9 is not one this sailvl reads"):
        build_loader(_config(tmp_path), tiny_processor, seed=3).load_state_dict({**state, "version": 9})
    old = {k: v for k, v in state.items() if k != "data"} | {"version": 1}  # saved before fingerprints
    _append_records(tmp_path, tiny_processor)
    with caplog.at_level(logging.WARNING, logger="sailvl.data.loader"):
        build_loader(_config(tmp_path), tiny_processor, seed=3).load_state_dict(old)
    assert "carries no data fingerprint" in caplog.text
