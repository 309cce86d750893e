"""End to end: `sailvl train tiny-sailvit` (all three stages) learns held-out colours, measured two ways."""

from __future__ import annotations

import base64
import io
import json

import pandas as pd
import pytest
import torch
from PIL import Image

# A colour-only, one-large-shape world keeps this test within a few minutes on 2 idle cores; the demo world
# (colour, shape, digit) needs the shipped stage III budget. Measured on this world with 800 stage III steps: 0.96
# held-out colour accuracy from `sailvl eval` (chance 1/8) when written; 0.60 (29 of 48) on 2026-12-03 both ways of
# scoring, at this test's own first commit too (runs are bit-identical across reruns and transformers 5.23/5.24).
# The model's init seed alone spans 0.56 / 0.60 / 0.92 (seeds 2 / 0 / 1), so the thresholds below sit under
# the lowest of those while staying far above chance.
STAGE3_STEPS = 800


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """World + tiny model dir + the three tiny-sailvit stages (stage III shortened) run through the CLI."""
    from sailvl.cli import main
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("e2e_learning")
    world = root / "world"
    generate_world(world, n=600, seed=0, tasks=["colour"], n_bench=48, max_objects=1, object_scale=2.0)
    model_dir = make_tiny_model_dir(world, root / "model", seed=0)
    out = root / "run"
    main(
        [
            "train",
            "tiny-sailvit",
            f"vars.world={world}",
            f"vars.model_dir={model_dir}",
            f"stages.2.budget.steps={STAGE3_STEPS}",
            "--out",
            str(out),
        ]
    )
    return {"world": world, "run": out, "export": out / "world-knowledge" / "export"}


def _colour_ranking_accuracy(model_dir, world) -> float:
    """Held-out colour accuracy by ranking the summed answer log-probability of every colour name."""
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model
    from sailvl.synth.qa import SHORT_SUFFIX
    from sailvl.synth.scenes import COLOURS

    processor = SailVLProcessor.from_pretrained(model_dir)
    model = load_model(model_dir).eval()
    bench = pd.read_csv(world / "bench" / "synth_vqa.tsv", sep="\t")
    bench = bench[bench["category"] == "colour"]
    colours = list(COLOURS)
    correct = 0
    with torch.no_grad():
        for _, row in bench.iterrows():
            image = Image.open(io.BytesIO(base64.b64decode(row["image"]))).convert("RGB")
            question = f"<image>\n{row['question']}\n{SHORT_SUFFIX}"
            scores = []
            for colour in colours:
                conv = [{"role": "user", "content": question}, {"role": "assistant", "content": colour}]
                enc = processor.encode_sample(conv, [image])
                logits = model(input_ids=enc.input_ids[None], pixel_values=enc.pixel_values).logits[0, :-1]
                targets = enc.labels[1:]
                keep = targets != -100
                logp = torch.log_softmax(logits[keep].float(), dim=-1)
                scores.append(float(logp.gather(-1, targets[keep][:, None]).sum()))
            correct += colours[max(range(len(colours)), key=scores.__getitem__)] == row["answer"]
    return correct / len(bench)


@pytest.mark.slow
def test_stages_run_in_order_and_stage3_loss_falls(trained):
    records = [json.loads(line) for line in open(trained["run"] / "metrics.jsonl")]
    stages = [r["stage"] for r in records]
    assert stages[0] == "warmup-adaptation" and stages[-1] == "world-knowledge"
    stage3 = [r["loss"] for r in records if r["stage"] == "world-knowledge"]
    assert len(stage3) == STAGE3_STEPS
    first, last = sum(stage3[:20]) / 20, sum(stage3[-50:]) / 50
    # A random 1k-word model starts near ln(vocab) ~ 6.7 nats; answers and captions are far more predictable.
    # Measured: first 20 steps 5.41, last 50 steps 0.55.
    assert first > 5.0 and last < 0.8, (first, last)


@pytest.mark.slow
def test_issue5_held_out_colour_accuracy_after_stage3(trained):
    from sailvl.synth.scenes import COLOURS

    chance = 1 / len(COLOURS)
    accuracy = _colour_ranking_accuracy(trained["export"], trained["world"])
    # Measured 0.60 (29 of 48) on 2026-12-03, 0.96 before: 0.45 is 3.6x chance.
    assert accuracy >= 0.45, f"held-out colour accuracy {accuracy:.2f} (chance {chance:.2f})"


@pytest.mark.slow
def test_issue7_sailvl_eval_scores_the_trained_model_far_above_chance(trained):
    from sailvl.cli import main
    from sailvl.synth.scenes import COLOURS

    out = trained["run"] / "eval"
    main(
        [
            "eval",
            "--model",
            str(trained["export"]),
            "--data-dir",
            str(trained["world"] / "bench"),
            "--bench",
            "synth_vqa",
            "--out",
            str(out),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == STAGE3_STEPS and results["samples_seen"] > 0  # budget of the final stage
    vqa = results["benchmarks"]["synth_vqa"]
    colour = vqa["per_category"]["colour"]
    # Open answers: the JSON reports no chance level (null) for synth_vqa categories, so compare with a uniform
    # guess over the world's colour names (percent).
    chance = colour["chance"] if colour["chance"] is not None else 100 / len(COLOURS)
    assert colour["n"] == 48
    # Measured 60.4% (29 of 48) on 2026-12-03 and 96% before (see STAGE3_STEPS); the bench is colour-only, so
    # the benchmark score is the colour accuracy.
    assert colour["accuracy"] >= 45.0 > 3 * chance, colour
    assert vqa["score"] == colour["accuracy"], vqa
    predictions = [json.loads(line) for line in open(out / "synth_vqa" / "predictions.jsonl")]
    # Answers depend on the image, not one constant word: measured 6 distinct colour names.
    assert len({p["value"] for p in predictions}) >= 5
