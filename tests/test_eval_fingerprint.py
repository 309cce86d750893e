"""Eval caches are pinned to the settings that shaped them: other settings are refused, the same ones resume."""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest
from PIL import Image

from sailvl.errors import SailvlError
from sailvl.eval.distributed import EvalShard
from sailvl.eval.fingerprint import FINGERPRINT_FILE
from sailvl.eval.registry import get_benchmark
from sailvl.eval.runner import _judge_benchmark, run_eval, shard_cache_name
from sailvl.eval.tsv import BenchItem, write_benchmark


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (shade, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _bench(tmp_path, n: int = 6):
    path = tmp_path / "synthetic.tsv"
    rows = [{"index": i, "image": _png(i * 30), "question": f"colour {i}?", "answer": "yes" if i % 2 else "no"}
            for i in range(n)]  # fmt: skip
    write_benchmark(path, rows)
    return path


def _model(tmp_path, name="model"):
    """A stand-in model directory: the fingerprint reads its files, nothing loads them."""
    model = tmp_path / name
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"hidden_size": 64}))
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    return model


class Recorder:
    """A predictor that answers every item right and records the settings it was asked with."""

    def __init__(self):
        self.seen: list[int] = []
        self.max_new_tokens: set[int] = set()

    def __call__(self, items, prompts, max_tiles, max_new_tokens):
        self.seen.extend(it.index for it in items)
        self.max_new_tokens.add(max_new_tokens)
        return [it.answer for it in items]


def _run(bench, out, model, predictor=None, **settings):
    msac = settings.pop("msac", False)
    settings.setdefault("max_new_tokens", 4)
    return run_eval([str(bench)], out, predictor or Recorder(), batch_size=4, model_dir=model,
                    predictor_settings={"msac": msac, "backend": "transformers"}, **settings)  # fmt: skip


def _change_weights(model, bench, out):
    # Same size, other content: a retrained export of the same architecture.
    (model / "model.safetensors").write_bytes(bytes(reversed(range(256))) * 8)
    return {}


CHANGES = {
    "max_new_tokens": ({"max_new_tokens": 8}, "max_new_tokens=4; this run has max_new_tokens=8"),
    "preset": ({"preset": "sailvl"}, "preset=vlmevalkit"),
    "msac": ({"msac": True}, "msac=false; this run has msac=true"),
    "max_tiles": ({"max_tiles": 2}, "max_tiles=6; this run has max_tiles=2"),
    "model": (_change_weights, "model model.safetensors=sha256"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_rerun_with_other_settings_never_reuses_answers(tmp_path, change):
    bench, model, out = _bench(tmp_path), _model(tmp_path), tmp_path / "out"
    first = _run(bench, out, model)
    assert first["benchmarks"]["synthetic"]["score"] == pytest.approx(100.0)
    results = (out / "results.json").read_text()
    update, message = CHANGES[change]
    settings = update(model, bench, out) if callable(update) else update
    predictor = Recorder()
    with pytest.raises(SailvlError, match=f"predictions in {out / 'synthetic'} were made with .*{message}"):
        _run(bench, out, model, predictor, **settings)
    assert predictor.seen == []  # refused before anything was predicted
    assert (out / "results.json").read_text() == results  # never relabelled with the new settings


def test_same_settings_resume_even_from_a_copied_model(tmp_path):
    bench, model, out = _bench(tmp_path), _model(tmp_path), tmp_path / "out"
    _run(bench, out, model, limit=4)  # half the benchmark
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)  # new modification times, same content
    os.utime(copy / "model.safetensors", ns=(1, 1))
    resumed = Recorder()
    results = _run(bench, out, copy, resumed)
    assert sorted(resumed.seen) == [4, 5]  # the four cached answers were reused
    assert results["benchmarks"]["synthetic"]["n"] == 6
    again = Recorder()
    _run(bench, out, copy, again)
    assert again.seen == []


def test_a_changed_benchmark_file_or_a_cache_without_fingerprint_is_refused(tmp_path):
    bench, model, out = _bench(tmp_path), _model(tmp_path), tmp_path / "out"
    _run(bench, out, model)
    _bench(tmp_path, n=7)
    with pytest.raises(SailvlError, match="benchmark_file=sha256"):
        _run(bench, out, model)
    shutil.rmtree(out / "synthetic")  # what the message says to do
    fresh = Recorder()
    assert _run(bench, out, model, fresh, max_new_tokens=8)["benchmarks"]["synthetic"]["n"] == 7
    assert sorted(fresh.seen) == list(range(7)) and fresh.max_new_tokens == {8}
    (out / FINGERPRINT_FILE).unlink()  # as an older sailvl left its predictions
    with pytest.raises(SailvlError, match="carry no fingerprint.*use another --out or delete"):
        _run(bench, out, model, max_new_tokens=8)


class Rank1(EvalShard):
    """Rank 1 of 2 without a process group: its gather hands its records to a rank 0 that is not there."""

    def gather(self, records):
        return None


def test_a_sharded_rank_refuses_before_writing_its_cache_file(tmp_path):
    bench, model, out = _bench(tmp_path), _model(tmp_path), tmp_path / "out"
    shard = Rank1(rank=1, world_size=2)
    rank_file = out / "synthetic" / shard_cache_name(shard)
    predictor = Recorder()
    assert _run(bench, out, model, predictor, shard=shard) is None
    assert sorted(predictor.seen) == [1, 3, 5] and rank_file.is_file()
    assert not (out / FINGERPRINT_FILE).exists()  # only rank 0 pins
    _run(bench, tmp_path / "one", model)
    shutil.copy(tmp_path / "one" / FINGERPRINT_FILE, out / FINGERPRINT_FILE)  # as rank 0 pins it
    lines = rank_file.read_text()
    again = Recorder()
    with pytest.raises(SailvlError, match="max_new_tokens=4; this run has max_new_tokens=8"):
        _run(bench, out, model, again, shard=shard, max_new_tokens=8)
    assert again.seen == [] and rank_file.read_text() == lines
    _run(bench, out, model, again, shard=shard)
    assert again.seen == []  # the same settings: rank 1 resumes from its own cache file


def test_a_judgement_is_redone_when_the_answer_it_graded_changed(tmp_path):
    spec = get_benchmark("MMVet")
    items = [BenchItem(index=0, question="What colour?", answer="red", category="rec")]
    graded = []

    def judge(prompt, temperature=0.0, max_tokens=16):
        graded.append(prompt)
        return "1.0" if prompt.endswith("| red | ") else "0.0"  # the prompt ends "answer | prediction | "

    first = _judge_benchmark(spec, items, {"0": "red"}, tmp_path, judge)
    assert _judge_benchmark(spec, items, {"0": "red"}, tmp_path, judge) == first and len(graded) == 1
    changed = _judge_benchmark(spec, items, {"0": "blue"}, tmp_path, judge)
    assert len(graded) == 2 and (first["score"], changed["score"]) == (100.0, 0.0)


def test_evaluate_model_refuses_before_loading_the_model(tmp_path):
    from sailvl.eval.model_eval import evaluate_model

    bench, model, out = _bench(tmp_path), _model(tmp_path), tmp_path / "out"
    _run(bench, out, model)  # the stand-in model cannot load: a refusal must come first
    with pytest.raises(SailvlError, match="max_new_tokens=4; this run has max_new_tokens=8"):
        evaluate_model(model, [str(bench)], out, max_new_tokens=8, batch_size=4)
