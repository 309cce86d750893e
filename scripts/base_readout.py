"""Does the pretrained tiny base see and answer? Its readout against the same base with a random ViT (issue 27).

Per arm, from the base of one seed (`sailvl experiment base`): align the projector alone on a fresh world's detailed
captions (ViT and LLM frozen), score zero-shot, then one fixed short SFT of every part on that world's questions
(same file, order, seed and LR in both arms) and score again. Arms: the base as built (`pretrained-vit`) and the same
base with its vision tower put back to the random init (`random-vit`): the positive and negative control of a ViT
experiment. Scored on the world's held-out bench (open answers, MCQ, yes/no), images never trained on.

    PYTHONPATH=. python scripts/base_readout.py --base runs/base/seed-0 --work runs/base-readout

Prints one JSON object (also written to WORK/results.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sailvl.eval.model_eval import evaluate_model
from sailvl.experiment.pretrained import BASE_WORLD, assemble, write_detailed_captions
from sailvl.synth import generate_world
from sailvl.train import load_recipe
from sailvl.train.trainer import train_recipe

BENCHES = ["synth_vqa", "synth_mcq", "synth_yesno"]


def _train(init: Path, out: Path, seed: int, steps: int, lr: float, trainable: str, sources: str) -> Path:
    overrides = [f"vars.model_dir={init}", f"seed={seed}", f"stages.0.budget.steps={steps}", f"stages.0.lr={lr}",
                 f"stages.0.trainable={trainable}", f"data.sources={sources}"]  # fmt: skip
    return train_recipe(load_recipe("tiny-captioner", overrides), out, resume="auto")[0]


def _score(model: Path, world: Path, limit: int | None) -> dict[str, float]:
    results = evaluate_model(
        model, BENCHES, model / "eval-readout", world / "bench", max_tiles=1, limit=limit
    )
    scores = {b: float(results["benchmarks"][b]["score"]) for b in BENCHES}
    tasks = results["benchmarks"]["synth_vqa"].get("per_category", {})
    scores.update({f"open:{t}": float(row["accuracy"]) for t, row in sorted(tasks.items())})
    return scores


def random_vit_copy(base_dir: Path, out: Path) -> Path:
    """The base model with its vision tower back at the random init of the base's `init` model."""
    return out if (out / "config.json").is_file() else assemble(base_dir / "model", base_dir / "init", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", type=Path, required=True, help="A base directory (sailvl experiment base --out)."
    )
    parser.add_argument("--work", type=Path, default=Path("runs/base-readout"))
    parser.add_argument(
        "--world-seed", type=int, default=0, help="Seed of the readout world (not a base seed)."
    )
    parser.add_argument("--n", type=int, default=2000, help="Training images of the readout world.")
    parser.add_argument("--align-steps", type=int, default=300)
    parser.add_argument("--sft-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="Training seed (data order) of both arms.")
    parser.add_argument("--limit", type=int, default=0, help="Rows per benchmark (0: all).")
    args = parser.parse_args()
    work = args.work
    world = work / "world"
    if not (world / "world.json").is_file():
        generate_world(world, args.n, args.world_seed, n_bench=300, **BASE_WORLD)
    captions = write_detailed_captions(world, work / "captions.jsonl")
    align_data = f"[{{path: {captions}, image_root: {world}}}]"
    sft_data = f"[{{path: {world / 'sft.jsonl'}, image_root: {world}}}]"
    arms = {
        "pretrained-vit": args.base / "model",
        "random-vit": random_vit_copy(args.base, work / "random-vit-base"),
    }
    rows = {}
    for arm, init in arms.items():
        aligned = _train(
            init, work / arm / "align", args.seed, args.align_steps, 1e-3, "[projector.*]", align_data
        )
        sft = _train(aligned, work / arm / "sft", args.seed, args.sft_steps, 1e-3,
                     "[vision.*,projector.*,llm.*]", sft_data)  # fmt: skip
        limit = args.limit or None
        rows[arm] = {"zero_shot": _score(aligned, world, limit), "after_sft": _score(sft, world, limit)}
        print(json.dumps({arm: rows[arm]}), flush=True)
    summary = {"base": str(args.base), "world_seed": args.world_seed, "align_steps": args.align_steps,
               "sft_steps": args.sft_steps, "seed": args.seed, "arms": rows,
               "control_gap": {when: rows["pretrained-vit"][when]["synth_vqa"] - rows["random-vit"][when]["synth_vqa"]
                               for when in ("zero_shot", "after_sft")}}  # fmt: skip
    (work / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
