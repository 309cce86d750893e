"""LoRA vs full fine-tuning on a held-out task of the synthetic world, on CPU (issue 25's acceptance line).

A tiny model is first trained fully on one task (shape questions, world A) so it answers in the right format;
then, from that start, full fine-tuning and the shipped `tiny-lora` recipe (rank 4, LLM + projector adapters)
run the same number of steps on a held-out task (colour questions, world B), for each seed. Every arm is scored
on the same held-out items (world B's synth_vqa bench, images never trained on); the line asks LoRA's gain over
the start to be at least 80% of full fine-tuning's.

    PYTHONPATH=. python scripts/lora_vs_full.py --work runs/lora-vs-full   # defaults: the measured run (~20 min)

Prints one JSON object (also written to WORK/results.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sailvl.eval.model_eval import evaluate_model
from sailvl.model import count_parameters, load_model
from sailvl.synth import generate_world
from sailvl.synth.tiny_model import make_tiny_model_dir
from sailvl.train import load_recipe
from sailvl.train.trainer import train_recipe

EASY = {"max_objects": 1, "object_scale": 2.0}  # one large shape per image: learnable in minutes on CPU
FULL = ["stages.0.lora=null", "stages.0.trainable=[vision.*,projector.*,llm.*]", "stages.0.lr=1.0e-3"]


def _train(
    world: Path, model_dir: Path, out: Path, seed: int, steps: int, packs: int, extra: list[str]
) -> Path:
    overrides = [
        f"vars.world={world}", f"vars.model_dir={model_dir}", f"seed={seed}", f"stages.0.budget.steps={steps}",
        f"data.packs_per_batch={packs}",
    ]  # fmt: skip
    return train_recipe(load_recipe("tiny-lora", overrides + extra), out, resume="auto")[0]


def _score(model_dir: Path, world: Path, limit: int | None) -> float:
    # One tile per image, as in training (the eval preset would tile synth_vqa images up to 6 times).
    results = evaluate_model(
        model_dir,
        ["synth_vqa"],
        model_dir / f"eval-{world.name}",
        world / "bench",
        max_tiles=1,
        limit=limit or None,
    )
    return float(results["benchmarks"]["synth_vqa"]["score"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/lora-vs-full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=600, help="Training images per world.")
    parser.add_argument(
        "--base-steps", type=int, default=50, help="Full fine-tuning steps of the start model."
    )
    parser.add_argument("--steps", type=int, default=80, help="Steps of each arm on the held-out task.")
    parser.add_argument("--packs", type=int, default=1, help="Packed rows of 512 tokens per step.")
    parser.add_argument(
        "--lora-lr", type=float, default=4e-3, help="LoRA arm's peak LR (the full arm's is 1e-3)."
    )
    parser.add_argument("--limit", type=int, default=40, help="Held-out items scored (0: all).")
    parser.add_argument(
        "--lora", nargs="*", default=[], help="Extra overrides of the LoRA arm, e.g. stages.0.lora.r=6."
    )
    parser.add_argument(
        "--eval-world",
        choices=["test", "dev"],
        default="test",
        help="Score on the held-out test world's bench, or on a dev world (seed 2) to choose settings without "
        "looking at the test items.",
    )
    parser.add_argument(
        "--start-captions",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Train the start model on world A's captions too, so it knows every colour word (as a pretrained "
        "LLM knows its vocabulary) while never having been asked a colour question. Without it the colour "
        "words' tied embeddings are untrained, which only full fine-tuning can fix (LoRA never targets them).",
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="Train the start model from this pretrained base (`sailvl experiment base`: a text-pretrained LLM "
        "that knows every answer word, a captioning-pretrained ViT) instead of a random tiny model.",
    )
    args = parser.parse_args()
    work = args.work
    world_a, world_b = work / "world-shape", work / "world-colour"
    if not (world_b / "world.json").is_file():
        generate_world(world_a, args.n, 0, tasks="shape", **EASY)
        # No yes/no pairs in the held-out task: on a tiny budget they teach "Yes" to every question.
        generate_world(world_b, args.n, 1, tasks="colour", yesno_prob=0.0, **EASY)
        make_tiny_model_dir(world_a, work / "tiny-model", seed=0)
    eval_world = world_b
    if args.eval_world == "dev":
        eval_world = work / "world-colour-dev"
        if not (eval_world / "world.json").is_file():
            generate_world(eval_world, args.n, 2, tasks="colour", yesno_prob=0.0, **EASY)
    start_data = []
    if args.start_captions:
        sources = ", ".join(
            f"{{path: {world_a / f}, image_root: {world_a}}}" for f in ("sft.jsonl", "pretrain.jsonl")
        )
        start_data = [f"data.sources=[{sources}]"]
    init = args.base or work / "tiny-model"
    start = _train(world_a, init, work / "start", 0, args.base_steps, args.packs, FULL + start_data)
    start_score = _score(start, eval_world, args.limit)
    total = count_parameters(load_model(start))["total"]
    rows = []
    for seed in args.seeds:
        full = _train(world_b, start, work / f"full-{seed}", seed, args.steps, args.packs, FULL)
        lora_lr = [f"stages.0.lr={args.lora_lr}"] if args.lora_lr else []
        lora = _train(
            world_b, start, work / f"lora-{seed}", seed, args.steps, args.packs, lora_lr + args.lora
        )
        full_score, lora_score = _score(full, eval_world, args.limit), _score(lora, eval_world, args.limit)
        gain_full, gain_lora = full_score - start_score, lora_score - start_score
        rows.append(
            {
                "seed": seed,
                "full": full_score,
                "lora": lora_score,
                "gain_ratio": gain_lora / gain_full if gain_full else None,
            }
        )
        print(json.dumps({"start_score": start_score, **rows[-1]}), flush=True)
    adapters = 4 * (2 * 2816 + 640)  # tiny-lora's rank-4 adapters on the tiny preset (tests/test_lora.py)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("full", "lora")}
    summary = {
        "start_score": start_score,
        "per_seed": rows,
        "mean_full": mean["full"],
        "mean_lora": mean["lora"],
        "mean_gain_ratio": (mean["lora"] - start_score) / (mean["full"] - start_score),
        "trainable_fraction_lora": adapters / (total + adapters),
        "steps": args.steps,
        "base_steps": args.base_steps,
        "packs_per_step": args.packs,
        "lora_lr": args.lora_lr,
        "lora_overrides": args.lora,
        "start_captions": args.start_captions,
        "base": str(args.base) if args.base else None,
        "held_out_items": f"{eval_world.name}/bench/synth_vqa.tsv"
        + (f" (first {args.limit})" if args.limit else ""),
    }
    (work / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
