"""Model steps with a real (tiny, untrained) model directory: recaption and judge run through
`sailvl.infer`, every record still ends in exactly one place, judge answers are parsed or rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from sailvl.curation.config import load_pipeline
from sailvl.curation.executors import run_pipeline
from sailvl.curation.lineage import check_lineage, iter_lineage

PIPELINES = Path(__file__).resolve().parents[1] / "sailvl" / "config" / "pipelines"


@pytest.fixture(scope="module")
def world_and_model(tmp_path_factory):
    import torch

    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("m")
    generate_world(root / "world", n=6, seed=1)
    model_dir = make_tiny_model_dir(root / "world", root / "model", seed=0, vocab_size=600)
    return root, model_dir


def test_recaption_then_judge_with_model_dir(world_and_model):
    root, model_dir = world_and_model
    cfg = load_pipeline(
        PIPELINES / "synth_recaption_judge.yaml",
        [f"input.paths=[{root}/world/pretrain.jsonl]", f"output_dir={root}/run", f"steps.2.model={model_dir}",
         f"steps.5.model={model_dir}", "steps.2.max_new_tokens=12", "steps.3.min_words=1",
         "steps.3.max_repeated_ngram_fraction=1.0", "steps.3.min_alpha_fraction=0.0"],
    )  # fmt: skip
    manifest = run_pipeline(cfg)
    report = check_lineage(root / "run")
    assert report.ok and manifest["input_records"] == 12
    rows = list(iter_lineage(root / "run"))
    assert sum(r.get("reason") == "not_selected:caption_type" for r in rows) == 6  # the detailed half
    judge_reasons = {"judge_unparseable", "judge_low_richness", "judge_misaligned"}
    for row in rows:
        assert row["status"] == "kept" or row["step"] in {
            "select",
            "recaption",
            "text_checks",
            "dedup",
            "judge",
        }
        if row.get("step") == "judge":
            assert row["reason"] in judge_reasons
    assert manifest["steps"]["recaption"]["in"] == 6
