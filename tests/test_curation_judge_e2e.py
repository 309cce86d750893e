"""Issue 6 headline: tiny captioner on gold captions -> recaption the alt-text pool -> tiny judge -> filter.

Everything runs through the CLI on files (`sailvl synth` equivalents, `sailvl curate`, `sailvl train`), like the
demo; the judge is measured on a held-out world (other seed, unseen images) with `measure_judge`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

PIPELINES = Path(__file__).resolve().parent.parent / "sailvl" / "config" / "pipelines"
# Easiest world (one large shape; colour/shape tasks): the 0.75M-parameter model at 112 px cannot read digits,
# words or charts in a CPU test budget. Budgets are the shipped recipes' shrunk to fit a few minutes; most steps go
# to the captioner, which the judge starts from (the likelihood judge is as good as the model can see).
# MEASURED (these budgets, held-out seed-1 world, likelihood judge calibrated on the training pairs): keeps 83% of
# correct captions, rejects 100% of alt-texts and 63% of corrupted captions (colour 100%, position 52%, shape 36%)
# vs 17% of correct detailed ones. The demo's budgets (BENCHMARKS.md) reach issue 6's 80% / 80%.
WORLD = {"max_objects": 1, "object_scale": 2.0, "tasks": ["colour", "shape"]}
CAPTIONER_STEPS = 900
JUDGE_STEPS = 100
POOL = 48  # pretrain.jsonl records read for recaptioning (alt and detailed alternate; half are alt-texts)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """World, held-out world, caption split, captioner, judge, and the recaption+judge curation run."""
    from sailvl.cli import main
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    torch.set_num_threads(1)  # tiny matmuls: one thread is as fast and far faster on a shared box
    root = tmp_path_factory.mktemp("judge_e2e")
    world, held_out = root / "world", root / "held-out"
    generate_world(world, n=800, seed=0, n_bench=40, **WORLD)
    generate_world(held_out, n=100, seed=1, n_bench=40, **WORLD)
    tiny = make_tiny_model_dir(world, root / "tiny-model", seed=0)
    split, captioner, judge = root / "caption-split", root / "captioner", root / "judge"
    main(["curate", str(PIPELINES / "synth_caption_split.yaml"), f"input.paths=[{world}/pretrain.jsonl]",
          f"output_dir={split}"])  # fmt: skip
    main(["train", "tiny-captioner", f"vars.world={world}", f"vars.model_dir={tiny}", f"vars.data={split}/kept",
          f"stages.0.budget.steps={CAPTIONER_STEPS}", "--out", str(captioner)])  # fmt: skip
    captioner_export = captioner / "captioner" / "export"
    main(["train", "tiny-judge", f"vars.world={world}", f"vars.init={captioner_export}",
          f"vars.captions={split}/kept", f"stages.0.budget.steps={JUDGE_STEPS}", "--out", str(judge)])  # fmt: skip
    judge_export = judge / "judge" / "export"
    main(["curate", "judge-calibrate", str(judge_export), str(world / "judge.jsonl")])
    # The alt-text pool of the held-out world: images neither model was trained on.
    recaption = root / "recaption"
    main(["curate", str(PIPELINES / "synth_recaption_judge.yaml"), f"input.paths=[{held_out}/pretrain.jsonl]",
          f"input.limit={POOL}", f"steps.2.model={captioner_export}", f"steps.5.model={judge_export}",
          f"output_dir={recaption}"])  # fmt: skip
    return {"root": root, "world": world, "held_out": held_out, "split": split, "captioner": captioner,
            "judge": judge, "judge_export": judge_export, "recaption": recaption}  # fmt: skip


@pytest.mark.slow
def test_caption_split_keeps_only_gold_detailed_captions(loop):
    rows = [json.loads(line) for f in sorted((loop["split"] / "kept").glob("*.jsonl")) for line in open(f)]
    assert len(rows) == 800  # one detailed caption per training image
    assert {r["metadata"]["caption_type"] for r in rows} == {"detailed"}


@pytest.mark.slow
def test_captioner_and_judge_losses_fall(loop):
    # The judge starts from the captioner, so part of its data (captions, short answers) is learned already.
    for run, stage, factor in ((loop["captioner"], "captioner", 0.5), (loop["judge"], "judge", 0.7)):
        losses = [json.loads(line)["loss"] for line in open(run / "metrics.jsonl")]
        first, last = sum(losses[:10]) / 10, sum(losses[-50:]) / 50
        assert last < factor * first, (stage, first, last)  # measured: captioner ~0.1, judge 0.53


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in open(f)]


@pytest.mark.slow
def test_recaption_and_judge_account_for_every_record(loop):
    kept, rejected = _rows(loop["recaption"] / "kept"), _rows(loop["recaption"] / "rejected")
    assert len(kept) + len(rejected) == POOL
    assert sum(r["step"] == "select" for r in rejected) == POOL // 2  # the detailed half of the records
    judged = [r for r in rejected if r["step"] == "judge"] + kept
    assert judged, "no recaption reached the judge"
    assert {r["reason"] for r in rejected if r["step"] == "judge"} <= {
        "judge_misaligned",
        "judge_low_richness",
    }
    for row in kept:
        assert (
            row["metadata"]["caption_type"] == "recaptioned"
            and len(row["conversation"][-1]["content"].split()) >= 5
        )
        assert row["metadata"]["judge_ita"] is True and row["metadata"]["judge_vir"] >= 3
    # The likelihood judge used the threshold judge-calibrate saved; the report plots its scores.
    from sailvl.curation.report import write_report

    threshold = json.loads((loop["judge_export"] / "judge_calibration.json").read_text())["min_alignment"]
    assert all(row["metadata"]["judge_ita_score"] >= threshold for row in kept)
    misaligned = [r for r in rejected if r.get("reason") == "judge_misaligned"]
    assert all(r["sample"]["metadata"]["judge_ita_score"] < threshold for r in misaligned)
    assert (
        str(loop["recaption"] / "report" / "judge_alignment.png") in write_report(loop["recaption"])["plots"]
    )


@pytest.mark.slow
def test_issue6_judge_on_held_out_captions(loop):
    from sailvl.curation.judge_quality import measure_judge_file

    result = measure_judge_file(
        loop["judge_export"], loop["held_out"] / "judge.jsonl", batch_size=32, ita_method="likelihood"
    )
    print("judge on the held-out world:", json.dumps(result))
    by_source = result["rejected_by_source"]
    assert result["good"] >= 50 and result["bad"] >= 100
    assert by_source["alt"] >= 0.9, result  # one-line alt-texts: unlikely as a description, and not rich
    # Measured 100%: a wrong colour is a word the judge did not expect.
    assert by_source["corrupted:colour"] >= 0.9, result
    # Corrupted captions are rejected far more often than correct ones (measured 63% vs 17%) ...
    assert by_source["corrupted"] >= by_source["detailed"] + 0.25, result
    assert result["keep_rate_good"] >= 0.7, result  # ... while most correct captions are kept (measured 83%)
