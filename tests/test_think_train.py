"""A tiny model trains on think.jsonl (finite loss on trace + answer targets) and its replies are scored on
synth_think after their `<think>` trace is split off."""

from __future__ import annotations

import json
import math

import pytest
import torch


@pytest.mark.slow
def test_tiny_model_trains_on_think_records_and_eval_strips_its_traces(tmp_path):
    from sailvl.data.processor import SailVLProcessor
    from sailvl.data.thinking import split_thinking
    from sailvl.eval.model_eval import model_predictor
    from sailvl.eval.runner import run_eval
    from sailvl.eval.scorers import vqa_match
    from sailvl.eval.tsv import read_benchmark
    from sailvl.model import load_model
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir
    from sailvl.train import load_recipe
    from sailvl.train.trainer import train_recipe

    torch.set_num_threads(1)
    world = tmp_path / "world"
    generate_world(world, 4, 0, tasks=["digit"], n_bench=6, think=24, digit_jitter=0.0)
    tiny = make_tiny_model_dir(world, tmp_path / "tiny", seed=0, vocab_size=512)
    processor = SailVLProcessor.from_pretrained(tiny)
    assert processor.tokenizer.convert_tokens_to_ids("<think>") >= 512  # the world has think.jsonl
    overrides = [
        f"vars.model_dir={tiny}", f"vars.data={world / 'think.jsonl'}", f"vars.image_root={world}",
        "parallel.activation_checkpointing=false", "parallel.mixed_precision=fp32", "data.max_tokens=512",
        "data.num_workers=0", "stages.0.lr=2e-3", "stages.0.budget.samples=null", "stages.0.budget.steps=3",
        "stages.0.save_every=0", "stages.0.max_tiles=1",
    ]  # fmt: skip
    (export,) = train_recipe(load_recipe("finetune", overrides), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) and r["target_tokens"] > 0 for r in rows)
    # Trace, answer and <|im_end|> are targets: 22 tokens per record (measured), several records per pack.
    assert rows[0]["target_tokens"] >= 20 * rows[0]["samples_seen"] > 0

    model = load_model(export).eval()
    predict = model_predictor(model, SailVLProcessor.from_pretrained(export))
    results = run_eval([str(world / "bench" / "synth_think.tsv")], tmp_path / "eval", predict)
    bench = results["benchmarks"]["synth_think"]
    replies = [json.loads(line) for line in (tmp_path / "eval" / "synth_think" / "predictions.jsonl").open()]
    replies = {r["index"]: r["value"] for r in replies}
    assert bench["n"] == 6 and bench["answers_with_think"] == sum("</think>" in v for v in replies.values())
    items = list(read_benchmark(world / "bench" / "synth_think.tsv", decode_images=False))
    expected = [vqa_match(split_thinking(replies[str(it.index)])[0], [it.answer]) for it in items]
    assert bench["score"] == pytest.approx(100.0 * sum(expected) / len(expected))
