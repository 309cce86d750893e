"""End to end: `sailvl eval` on the synthetic world's benchmarks with an untrained tiny model (CLI, resume)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch


@pytest.fixture(scope="module")
def world_and_model(tmp_path_factory):
    """A small synthetic world (colour/shape tasks) and an untrained tiny model directory for it."""
    from sailvl.data.processor import SailVLProcessor
    from sailvl.data.tokenizer import train_bpe_tokenizer
    from sailvl.eval.tsv import read_benchmark
    from sailvl.model import build_model, save_model
    from sailvl.synth import generate_world

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval_e2e")
    generate_world(root / "world", n=60, seed=0, tasks=["colour", "shape"], n_bench=24)
    texts = []
    for line in open(root / "world" / "sft.jsonl"):
        texts.extend(turn["value"] for turn in json.loads(line)["conversations"])
    for path in sorted((root / "world" / "bench").glob("*.tsv")):
        for item in read_benchmark(path, decode_images=False):
            texts.extend([item.question, item.answer, *item.options.values()])
    tokenizer = train_bpe_tokenizer(texts, vocab_size=512)
    processor = SailVLProcessor(tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=1)
    save_model(build_model("tiny", tokenizer=tokenizer, seed=0), root / "model")
    processor.save_pretrained(root / "model")
    (root / "model" / "trainer_state.json").write_text(
        json.dumps({"tokens_seen": 0, "samples_seen": 0, "step": 0})
    )
    return root


def _known_predictions(bench_tsv) -> tuple[list[dict], dict]:
    """Predictions with a known score for the fixture's synth_mcq / synth_yesno: MCQ right on colour, a wrong
    letter on shape and one empty answer; yes/no right on the first 18 items and flipped on the last 6."""
    from sailvl.eval.tsv import read_benchmark

    items = list(read_benchmark(bench_tsv, decode_images=False))
    rows = []
    for k, item in enumerate(items):
        if item.options:  # MCQ
            wrong = next(letter for letter in item.options if letter != item.answer)
            value = item.answer if item.category == "colour" else wrong
            value = "" if k == len(items) - 1 else value
        else:
            value = item.answer if k < 18 else {"Yes": "No", "No": "Yes"}[item.answer]
        rows.append({"index": str(item.index), "value": value})
    return rows, {str(item.index): item for item in items}


@pytest.mark.slow
def test_untrained_model_scores_zero_and_reruns_resume_and_cached_answers_score_exactly(
    world_and_model, capsys
):
    from sailvl.cli import main

    root = world_and_model
    out = root / "eval"
    common = ["eval", "--model", str(root / "model"), "--data-dir", str(root / "world" / "bench")]
    common += ["--bench", "synth_mcq", "--bench", "synth_yesno", "--batch-size", "8"]
    args = [*common, "--out", str(out)]
    main(args)
    assert "synth_mcq" in capsys.readouterr().out  # the table was printed
    results = json.loads((out / "results.json").read_text())
    assert results["samples_seen"] == 0  # budget copied from trainer_state.json for scaling fits
    for name in ("synth_mcq", "synth_yesno"):
        bench = results["benchmarks"][name]
        assert bench["n"] == 24
        assert set(bench["per_category"]) == {"colour", "shape"}
        # Measured: the untrained model's greedy reply is newlines only (empty once stripped), so no answer maps
        # to an option and the score is exactly 0 (chance is 25 / 50): a random model cannot know the answers.
        assert bench["score"] == 0.0 and bench["extraction_failed"] == 24, bench
        predictions = [
            json.loads(line) for line in (out / name / "predictions.jsonl").read_text().splitlines()
        ]
        assert sorted(int(p["index"]) for p in predictions) == list(range(24))  # one answer per item
        assert all(p["value"] == "" for p in predictions)
    predictions = (out / "synth_mcq" / "predictions.jsonl").read_text()
    # A second run finds every prediction cached and writes the same results.
    before = (out / "results.json").read_text()
    main(args)
    assert (out / "synth_mcq" / "predictions.jsonl").read_text() == predictions
    assert (out / "results.json").read_text() == before

    # Scoring through the CLI on answers whose score is known: cached predictions are scored, not regenerated.
    known = root / "eval_known"
    expected = {
        "synth_mcq": {"score": 50.0, "colour": 100.0, "shape": 0.0, "extraction_failed": 1},
        "synth_yesno": {"score": 75.0, "colour": 75.0, "shape": 75.0, "extraction_failed": 0},
    }
    for name in expected:
        rows, items = _known_predictions(root / "world" / "bench" / f"{name}.tsv")
        assert sorted({items[r["index"]].category for r in rows}) == ["colour", "shape"]
        (known / name).mkdir(parents=True)
        (known / name / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Pinned to this run's settings (the fingerprints of `out`, made by the same command): reused, not refused.
    shutil.copy(out / "fingerprints.json", known / "fingerprints.json")
    main([*common, "--out", str(known)])
    results = json.loads((known / "results.json").read_text())
    for name, want in expected.items():
        bench = results["benchmarks"][name]
        got = {"score": bench["score"], "extraction_failed": bench["extraction_failed"]}
        got |= {c: bench["per_category"][c]["accuracy"] for c in ("colour", "shape")}
        assert got == want, name
    assert results["average"] == pytest.approx((50.0 + 75.0) / 2)


def test_eval_cli_missing_benchmark_is_one_clear_error(tmp_path, capsys):
    from sailvl.cli import main

    root = tmp_path  # the benchmark is checked before the model is loaded
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--model", str(root / "model"), "--bench", "OCRBench", "--data-dir", str(root)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: benchmark OCRBench needs its VLMEvalKit TSV at") and err.count("\n") == 1


@pytest.mark.slow
def test_sailvl_preset_with_msac_runs_on_synthetic_benchmarks(world_and_model, monkeypatch):
    from sailvl.cli import main
    from sailvl.data import tiling

    calls = []
    real_msac = tiling.msac_tiles

    def counting_msac(*args, **kwargs):
        calls.append(kwargs.get("max_tiles", args[3] if len(args) > 3 else None))
        return real_msac(*args, **kwargs)

    monkeypatch.setattr(tiling, "msac_tiles", counting_msac)
    root = world_and_model
    out = root / "eval_sailvl"
    args = ["eval", "--model", str(root / "model"), "--data-dir", str(root / "world" / "bench")]
    args += ["--bench", "synth_mcq", "--bench", "synth_yesno", "--out", str(out), "--limit", "4"]
    main(args + ["--preset", "sailvl", "--msac", "--max-new-tokens", "4"])
    results = json.loads((out / "results.json").read_text())
    assert results["preset"] == "sailvl" and results["msac"] is True
    assert results["vlmevalkit_version"] and results["matching"] == "exact" and results["judge"] is None
    for name in ("synth_mcq", "synth_yesno"):
        bench = results["benchmarks"][name]
        assert bench["n"] == 4 and bench["max_tiles"] == 10 and bench["max_new_tokens"] == 4
        # No judge: nothing is judged, and every answer the exact rules cannot map counts as failed.
        predictions = [
            json.loads(line) for line in (out / name / "predictions.jsonl").read_text().splitlines()
        ]
        assert len(predictions) == 4 and bench["judged"] == 0
        # Measured: the untrained model answers with newlines only, so all 4 answers are empty, none maps to an
        # option, and the score is 0.
        empty = sum(not p["value"].strip() for p in predictions)
        assert empty == bench["extraction_failed"] == 4 and bench["score"] == 0.0, bench
    assert calls and set(calls) == {10}  # every single-image item went through MSAC with the preset cap


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_torchrun_eval_matches_one_process(world_and_model):
    import os
    import subprocess
    import sys

    from sailvl.cli import main

    root = world_and_model
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    common = ["eval", "--model", str(root / "model"), "--data-dir", str(root / "world" / "bench")]
    # Batch size 1: left padding inside a batch may change fp32 logits in the last bits, and the two runs
    # batch different items together; item-by-item generation is what must not depend on the rank.
    common += ["--bench", "synth_mcq", "--bench", "synth_yesno", "--limit", "9", "--batch-size", "1"]
    one = root / "eval_one"
    main([*common, "--out", str(one)])
    two = root / "eval_two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    torchrun += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    subprocess.run([*torchrun, "-m", "sailvl.cli", *common, "--out", str(two)], env=env, check=True)
    assert (two / "results.json").read_text() == (one / "results.json").read_text()
    for name in ("synth_mcq", "synth_yesno"):
        assert sorted((two / name).iterdir()) == [
            two / name / "predictions.jsonl",
            two / name / "result.json",
        ]
        lines = (two / name / "predictions.jsonl").read_text().splitlines()
        assert sorted(lines) == sorted((one / name / "predictions.jsonl").read_text().splitlines())
