"""End to end: `sailvl eval` on the synthetic world's benchmarks with an untrained tiny model (CLI, resume)."""

from __future__ import annotations

import json

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


@pytest.mark.slow
def test_untrained_model_scores_at_or_below_chance_and_reruns_resume(world_and_model, capsys):
    from sailvl.cli import main

    root = world_and_model
    out = root / "eval"
    args = [
        "eval",
        "--model",
        str(root / "model"),
        "--data-dir",
        str(root / "world" / "bench"),
        "--out",
        str(out),
    ]
    args += ["--bench", "synth_mcq", "--bench", "synth_yesno", "--batch-size", "8"]
    main(args)
    assert "synth_mcq" in capsys.readouterr().out  # the table was printed
    results = json.loads((out / "results.json").read_text())
    assert results["samples_seen"] == 0  # budget copied from trainer_state.json for scaling fits
    for name in ("synth_mcq", "synth_yesno"):
        bench = results["benchmarks"][name]
        assert bench["n"] == 24
        assert set(bench["per_category"]) == {"colour", "shape"}
        # A random model cannot know the answers: at chance at best (tolerance for a lucky constant answer).
        assert bench["score"] <= bench["chance"] + 15.0
    predictions = (out / "synth_mcq" / "predictions.jsonl").read_text()
    assert len(predictions.splitlines()) == 24
    # A second run finds every prediction cached and writes the same results.
    before = (out / "results.json").read_text()
    main(args)
    assert (out / "synth_mcq" / "predictions.jsonl").read_text() == predictions
    assert (out / "results.json").read_text() == before


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
        empty = sum(not p["value"].strip() for p in predictions)
        assert empty <= bench["extraction_failed"] <= 4  # an empty answer never maps to an option
        assert bench["score"] <= 100.0 * (4 - bench["extraction_failed"]) / 4
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
