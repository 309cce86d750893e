"""`sailvl curate` end to end through the CLI: run (`curate PIPELINE` and `curate run PIPELINE`), rerun
(resume = no-op), report with readable PNGs, judge command errors, the shipped pipeline on a synthetic world,
and `sailvl bench curate --json` (cheap steps and `--model-steps`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _curation_helpers import CHEAP_STEPS, write_corpus
from _plot_checks import TAB_BLUE, TAB_ORANGE, colour_pixels
from PIL import Image

from sailvl.cli import main
from sailvl.curation.lineage import check_lineage, read_kept

PIPELINES = Path(__file__).resolve().parents[1] / "sailvl" / "config" / "pipelines"


def _run_cli(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


def test_curate_run_resume_and_report(tmp_path, capsys):
    data, ids = write_corpus(tmp_path, 12, dup_every=4, bad_every=5)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"input": {"paths": [str(data)], "records_per_shard": 4},
                                        "output_dir": str(tmp_path / "run"), "steps": CHEAP_STEPS}))  # fmt: skip
    code, out = _run_cli(["curate", str(pipeline), "steps.1.min_words=2"], capsys)
    assert code == 0, out.err
    assert "12 records in, 7 kept" in out.out
    # `curate run` is the same command; a rerun finds every shard done.
    code, out = _run_cli(["curate", "run", str(pipeline), "steps.1.min_words=2"], capsys)
    assert code == 0 and "7 kept" in out.out
    code, out = _run_cli(["curate", str(pipeline), "steps.1.min_words=5"], capsys)
    assert code == 2 and "different pipeline" in out.err
    code, out = _run_cli(["curate", "report", str(tmp_path / "run")], capsys)
    assert code == 0
    assert "text_empty" in out.out and "exact_duplicate" in out.out
    report_dir = tmp_path / "run" / "report"
    for name in ("judge_scores.png", "caption_lengths.png"):
        assert Image.open(report_dir / name).size == (600, 400)
    # Caption lengths show bars of both series (kept blue, rejected orange); no judge ran, so its plot is the
    # "no data" placeholder, with no bars at all.
    lengths = report_dir / "caption_lengths.png"
    assert colour_pixels(lengths, TAB_BLUE) > 200 and colour_pixels(lengths, TAB_ORANGE) > 200
    assert colour_pixels(report_dir / "judge_scores.png", TAB_BLUE) == 0
    funnel = json.loads((tmp_path / "run" / "report" / "funnel.json").read_text())
    assert (
        funnel["input"] == 12 and funnel["steps"][-1]["out"] == 7 and check_lineage(tmp_path / "run", ids).ok
    )


def test_curate_user_errors(tmp_path, capsys):
    code, out = _run_cli(["curate", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "does not exist" in out.err
    code, out = _run_cli(["curate", "report", str(tmp_path)], capsys)
    assert code == 2 and "not a curation run directory" in out.err
    pairs = tmp_path / "judge.jsonl"
    pairs.write_text("")
    code, out = _run_cli(["curate", "judge-eval", str(tmp_path), str(tmp_path / "nope.jsonl")], capsys)
    assert code == 2 and "nope.jsonl does not exist" in out.err
    code, out = _run_cli(["curate", "judge-calibrate", str(tmp_path), str(pairs), "out.json"], capsys)
    assert code == 2 and "'out.json' is not key=value" in out.err


@pytest.mark.slow
def test_shipped_synthetic_pipeline(tmp_path, capsys):
    from sailvl.synth import generate_world

    world = tmp_path / "world"
    generate_world(world, n=40, seed=0)
    code, out = _run_cli(["curate", str(PIPELINES / "synth_cheap.yaml"), f"input.paths=[{world}/pretrain.jsonl]",
                          f"output_dir={tmp_path / 'run'}"], capsys)  # fmt: skip
    assert code == 0, out.err
    report = check_lineage(tmp_path / "run")
    assert report.ok and report.kept + report.rejected == 80
    # Alt-texts are short web captions: the text check drops them all, and every detailed caption passes.
    assert (
        report.rejected == sum(n for (step, _), n in report.by_reason.items() if step == "text_checks") == 40
    )
    kept = list(read_kept(tmp_path / "run"))
    assert len(kept) == 40 and {s.metadata["caption_type"] for s in kept} == {"detailed"}
    # The SFT set through the curriculum pipeline: three stages rising on all three scores.
    code, out = _run_cli(["curate", str(PIPELINES / "synth_sft_curriculum.yaml"), f"input.paths=[{world}/sft.jsonl]",
                          f"output_dir={tmp_path / 'sft'}"], capsys)  # fmt: skip
    assert code == 0, out.err
    stages = json.loads((tmp_path / "sft" / "curriculum" / "curriculum.json").read_text())["stages"]
    assert len(stages) == 3
    for key in ("difficulty", "complexity", "relevance"):
        assert stages[0]["means"][key] < stages[1]["means"][key] < stages[2]["means"][key]
    sources = yaml.safe_load((tmp_path / "sft" / "curriculum" / "sources.yaml").read_text())
    from sailvl.data.config import SourceConfig

    assert SourceConfig(**sources["stage-2"]["sources"][0]).path.endswith("stage-2.jsonl")


@pytest.mark.parametrize("name", sorted(p.name for p in PIPELINES.glob("*.yaml")))
def test_shipped_pipelines_validate(name):
    from sailvl.curation.config import load_pipeline

    cfg = load_pipeline(PIPELINES / name)
    assert len(cfg.build_steps()) == len(cfg.steps)


def test_bench_curate_json(capsys):
    code, out = _run_cli(["bench", "curate", "--json", "--images", "8", "--hashes", "300"], capsys)
    assert code == 0, out.err
    result = json.loads(out.out)
    for row in result["steps"].values():
        assert row["records_per_s"] > 0 and row["baseline_records_per_s"] > 0


def test_bench_curate_model_steps_json(capsys):
    args = ["bench", "curate", "--model-steps", "--json", "--records", "4", "--batch-size", "4",
            "--max-new-tokens", "3", "--repeats", "2"]  # fmt: skip
    code, out = _run_cli(args, capsys)
    assert code == 0, out.err
    result = json.loads(out.out)
    assert set(result["steps"]) == {"recaption", "judge_answer", "judge_likelihood"}
    assert result["model"] == {"preset": "tiny", "backend": "transformers", "records": 4, "max_new_tokens": 3}
    for row in result["steps"].values():
        assert row["records_per_s"] > 0 and row["baseline_records_per_s"] > 0 and row["batch_size"] == 4
        assert "re-encoding" in row["baseline"] and row["repeats"] == 2
        assert row["speedup_min_max"][0] <= row["speedup"] <= row["speedup_min_max"][1]
    assert result["steps"]["judge_likelihood"]["vs_answer_judge_one_at_a_time"] > 0
    # Generated tokens/s: an untrained model does not stop early, so about 3 tokens per record (re-tokenised text).
    recaption = result["steps"]["recaption"]
    assert 0 < recaption["generated_tokens_per_s"] <= 4 * recaption["records_per_s"] * 1.5
