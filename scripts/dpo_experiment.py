"""DPO vs its starting SFT model on held-out items of the synthetic world, on CPU (issue 25's DPO acceptance line).

For each seed: a tiny model is trained fully on world A's SFT answers (colour questions, one large shape per
image) for a short budget (the start), then the shipped `tiny-dpo` recipe runs from that start on world A's
preference pairs (the same questions, correct answer chosen, another colour rejected). Both models are scored on
the same held-out items of world B (another world seed: images never trained on):
- preference accuracy: the share of world B's preference pairs where the chosen answer's summed log-prob beats
  the rejected one's (`sailvl.infer.score.score_answers`);
- task accuracy: world B's synth_vqa bench, generated answers (`sailvl.eval.model_eval.evaluate_model`).
The line asks DPO to raise both, by more than the seed spread (both readings are reported: the std of the
paired gains, and the std of either arm's scores over seeds). Settings were fixed before the held-out run;
`--eval-world dev` scores a third world (seed 2) instead, for any tuning.

    PYTHONPATH=. python scripts/dpo_experiment.py --work runs/dpo-experiment   # defaults: the measured run

Prints one JSON line per seed and a summary (also written to WORK/results.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from sailvl.data.processor import SailVLProcessor
from sailvl.eval.model_eval import evaluate_model
from sailvl.infer.request import GenRequest
from sailvl.infer.score import score_answers
from sailvl.model import load_model
from sailvl.synth import generate_world
from sailvl.synth.tiny_model import make_tiny_model_dir
from sailvl.train import load_recipe
from sailvl.train.trainer import train_recipe

# Evaluation worlds by seed: held-out (B), dev (for tuning), confirm (a world first scored after every choice).
EVAL_WORLDS = {"held-out": 1, "dev": 2, "confirm": 3}
EASY = {"max_objects": 1, "object_scale": 2.0, "tasks": "colour", "yesno_prob": 0.0}
SFT = ["stages.0.lora=null", "stages.0.trainable=[vision.*,projector.*,llm.*]", "stages.0.lr=1.0e-3"]


def _sft(world: Path, model_dir: Path, out: Path, seed: int, steps: int) -> Path:
    overrides = [
        f"vars.world={world}",
        f"vars.model_dir={model_dir}",
        f"seed={seed}",
        f"stages.0.budget.steps={steps}",
    ]
    return train_recipe(load_recipe("tiny-lora", overrides + SFT), out, resume="auto")[0]


def _dpo(world: Path, start: Path, out: Path, seed: int, steps: int, extra: list[str]) -> Path:
    overrides = [
        f"vars.world={world}",
        f"vars.model_dir={start}",
        f"seed={seed}",
        f"stages.0.budget.steps={steps}",
    ]
    return train_recipe(load_recipe("tiny-dpo", overrides + extra), out, resume="auto")[0]


def preference_accuracy(model_dir: Path, world: Path, limit: int) -> float:
    """Share of the world's preference pairs (first `limit`) whose chosen answer has the higher summed log-prob."""
    records = [json.loads(line) for line in (world / "preference.jsonl").read_text().splitlines()][:limit]
    model, processor = load_model(model_dir), SailVLProcessor.from_pretrained(model_dir)
    requests = [GenRequest([str(world / r["image"])], r["conversations"][0]["value"]) for r in records]
    chosen = score_answers(
        model, processor, requests, [r["conversations"][-1]["value"] for r in records], max_tiles=1
    )
    rejected = score_answers(model, processor, requests, [r["rejected"] for r in records], max_tiles=1)
    wins = [float(c.logprobs.sum()) > float(r.logprobs.sum()) for c, r in zip(chosen, rejected, strict=True)]
    return sum(wins) / len(wins)


def task_accuracy(model_dir: Path, world: Path, limit: int) -> float:
    # One tile per image, as in training; one eval cache per evaluation world.
    out = model_dir / f"eval-{world.name}"
    results = evaluate_model(model_dir, ["synth_vqa"], out, world / "bench", max_tiles=1, limit=limit)
    return float(results["benchmarks"]["synth_vqa"]["score"])


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/dpo-experiment"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=400, help="Training images of world A.")
    parser.add_argument(
        "--sft-steps", type=int, default=300, help="Full fine-tuning steps of each start model."
    )
    parser.add_argument("--dpo-steps", type=int, default=400, help="tiny-dpo steps from each start.")
    parser.add_argument(
        "--dpo", nargs="*", default=[], help="Extra tiny-dpo overrides (e.g. stages.0.lr=...)."
    )
    parser.add_argument("--eval-world", choices=tuple(EVAL_WORLDS), default="held-out")
    parser.add_argument("--limit", type=int, default=200, help="Held-out pairs and bench items scored.")
    args = parser.parse_args()
    work = args.work
    world_a, model0 = work / "world-a", work / "tiny-model"
    world_eval = work / {"held-out": "world-b", "dev": "world-dev", "confirm": "world-c"}[args.eval_world]
    if not (world_a / "world.json").is_file():
        generate_world(world_a, args.n, 0, **EASY)
        make_tiny_model_dir(world_a, model0, seed=0)
    if not (world_eval / "world.json").is_file():
        generate_world(
            world_eval, max(200, 2 * args.limit), EVAL_WORLDS[args.eval_world], n_bench=args.limit, **EASY
        )
    rows = []
    for seed in args.seeds:
        start = _sft(world_a, model0, work / f"sft-{seed}", seed, args.sft_steps)
        dpo = _dpo(world_a, start, work / f"dpo-{seed}", seed, args.dpo_steps, args.dpo)
        row = {"seed": seed}
        for name, model_dir in (("start", start), ("dpo", dpo)):
            row[f"{name}_pref_acc"] = preference_accuracy(model_dir, world_eval, args.limit)
            row[f"{name}_task_acc"] = task_accuracy(model_dir, world_eval, args.limit)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {"per_seed": rows}
    for metric in ("pref_acc", "task_acc"):
        gains = [r[f"dpo_{metric}"] - r[f"start_{metric}"] for r in rows]
        scores = {arm: [r[f"{arm}_{metric}"] for r in rows] for arm in ("start", "dpo")}
        # Two readings of "the seed spread": the std over seeds of the paired gains (the start model's own
        # variation cancels, as every seed is scored on the same items), and the larger std of either arm's scores.
        summary[metric] = {
            "start_mean": statistics.mean(scores["start"]),
            "dpo_mean": statistics.mean(scores["dpo"]),
            "gain_per_seed": gains,
            "mean_gain": statistics.mean(gains),
            "gain_std": _spread(gains),
            "score_std": max(_spread(scores["start"]), _spread(scores["dpo"])),
            "passes_paired": min(gains) > 0 and statistics.mean(gains) > _spread(gains),
            "passes_unpaired": statistics.mean(gains) > max(_spread(scores["start"]), _spread(scores["dpo"])),
        }
    summary.update(
        sft_steps=args.sft_steps, dpo_steps=args.dpo_steps, dpo_overrides=args.dpo, n=args.n,
        eval_world=str(world_eval.name), items=args.limit,
    )  # fmt: skip
    (work / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
