"""Does the pretrained tiny base see and answer? Its readout under a pair of control arms (issue 27).

Per arm, from the base of one seed (`sailvl experiment base`), the `tiny-readout` recipe every experiment uses:
align the projector alone on a fresh world's detailed captions (ViT and LLM frozen), score zero-shot, then one
fixed short SFT of every part on that world's questions (same file, order, seed and LR in both arms) and score
again. Scored on the world's held-out bench (its dev set: open answers, MCQ, yes/no), images never trained on.

Control pairs (`--pair`):
- `vit`: the base as built (`pretrained-vit`) vs the same base with its vision tower back at the random init
  (`random-vit`): the positive and negative control of a ViT experiment.
- `captions`: alignment on the gold detailed captions (`gold-captions`) vs the same captions shuffled across
  images (`shuffled-captions`), both from the base as built: the controls of a caption-data experiment.
- `short-captions`: the same with the world's true alt-texts (`gold-short`, `shuffled-short`): recaption's
  controls.

`--experiment-world` builds the readout world with the experiments' settings (80% short answers; `WORLD_FLAGS`)
instead of the base world's answer-style mix: the dev worlds an experiment's budgets are sized on.

    PYTHONPATH=. python scripts/base_readout.py --base runs/base/seed-0 --work runs/base-readout --pair vit

Prints one JSON object (also written to WORK/results.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sailvl.cli import main as cli_main
from sailvl.demo.layout import export_dir
from sailvl.demo.pipeline import PIPELINES
from sailvl.eval.model_eval import evaluate_model
from sailvl.experiment.pretrained import BASE_WORLD, MANIFEST, assemble, write_gold_captions
from sailvl.synth import generate_world
from sailvl.train import load_recipe
from sailvl.train.trainer import train_recipe

BENCHES = ["synth_vqa", "synth_mcq", "synth_yesno"]
# `sailvl.demo.pipeline.WORLD_FLAGS` as generate_world keywords (tests/test_experiment.py checks they agree).
EXPERIMENT_WORLD = {**BASE_WORLD, "style_weights": "short=0.8,mcq=0.1,open=0.1", "yesno_prob": 0.1}


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


def with_captioning_projector(base_dir: Path, out: Path) -> Path:
    """The base model with the projector its ViT was pretrained with (the base's captioning run), not a random one."""
    vit_steps = json.loads((base_dir / MANIFEST).read_text())["size"]["vit_steps"]
    captioner = export_dir(base_dir / "runs" / f"vit-{vit_steps}", "captioner")
    if (out / "config.json").is_file():
        return out
    return assemble(base_dir / "model", captioner, out, projector=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", type=Path, required=True, help="A base directory (sailvl experiment base --out)."
    )
    parser.add_argument("--work", type=Path, default=Path("runs/base-readout"))
    parser.add_argument(
        "--pair", choices=("vit", "captions", "short-captions"), default="vit", help="Which control pair."
    )
    parser.add_argument(
        "--world-seed", type=int, default=0, help="Seed of the readout world (not a base seed)."
    )
    parser.add_argument("--n", type=int, default=2000, help="Training images of the readout world.")
    parser.add_argument("--n-bench", type=int, default=300, help="Items per benchmark of the readout world.")
    parser.add_argument(
        "--experiment-world", action="store_true", help="The experiments' world settings (WORLD_FLAGS)."
    )
    parser.add_argument("--align-steps", type=int, default=300)
    parser.add_argument("--sft-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="Training seed (data order) of both arms.")
    parser.add_argument(
        "--captioning-projector",
        action="store_true",
        help="The pretrained-vit arm keeps the projector its ViT was pretrained with (vit pair only; a base of "
        "VERSION 2 or later already carries it).",
    )
    parser.add_argument(
        "--sft-trainable",
        default="vision.*,projector.*,llm.*",
        help="What the SFT stage trains (comma-separated patterns; drop vision.* to read the ViT frozen).",
    )
    parser.add_argument("--limit", type=int, default=0, help="Rows per benchmark (0: all).")
    parser.add_argument(
        "--align-trainable",
        default="projector.*",
        help="What the alignment stage trains (comma-separated patterns; the recipe's default: the projector).",
    )
    parser.add_argument(
        "--sft-tasks",
        default="",
        help="Train the SFT on these tasks' questions only (comma-separated, e.g. colour,digit; empty: all): the "
        "tasks left out can only be answered from what the alignment taught.",
    )
    args = parser.parse_args()
    work = args.work
    world = work / "world"
    if not (world / "world.json").is_file():
        settings = EXPERIMENT_WORLD if args.experiment_world else BASE_WORLD
        generate_world(world, args.n, args.world_seed, n_bench=args.n_bench, **settings)
    gold = write_gold_captions(world, work / "captions.jsonl")
    if args.pair == "vit":
        pretrained = args.base / "model"
        if args.captioning_projector:
            pretrained = with_captioning_projector(args.base, work / "pretrained-vit-base")
        arms = {"pretrained-vit": (pretrained, gold),
                "random-vit": (random_vit_copy(args.base, work / "random-vit-base"), gold)}  # fmt: skip
    else:
        short = args.pair == "short-captions"
        if short:
            gold = write_gold_captions(world, work / "gold-short.jsonl", short=True)
        shuffled = write_gold_captions(world, work / "shuffled.jsonl", shuffle_seed=args.seed, short=short)
        names = ("gold-short", "shuffled-short") if short else ("gold-captions", "shuffled-captions")
        arms = {names[0]: (args.base / "model", gold), names[1]: (args.base / "model", shuffled)}
    sft_overrides = []
    if args.sft_tasks:  # the SFT questions of these tasks only, through the curation `select` step
        sft = work / f"sft-{args.sft_tasks.replace(',', '-')}"
        questions = world.resolve() / "sft.jsonl"  # absolute: the kept records carry their images' paths
        cli_main(["curate", str(PIPELINES / "synth_caption_split.yaml"), f"input.paths=[{questions}]",
                  "steps.0.field=task", f"steps.0.values=[{args.sft_tasks}]", f"output_dir={sft}"])  # fmt: skip
        sft_overrides = [f"stages.1.data.sources.0.path={sft / 'kept'}"]
    rows = {}
    for arm, (init, captions) in arms.items():
        overrides = [f"vars.model_dir={init}", f"vars.world={world}", f"vars.captions={captions}",
                     f"seed={args.seed}", f"stages.0.budget.steps={args.align_steps}",
                     f"stages.1.budget.steps={args.sft_steps}", f"stages.0.trainable=[{args.align_trainable}]",
                     f"stages.1.trainable=[{args.sft_trainable}]", *sft_overrides]  # fmt: skip
        run = work / arm
        train_recipe(load_recipe("tiny-readout", overrides), run, resume="auto")
        limit = args.limit or None
        rows[arm] = {"zero_shot": _score(export_dir(run, "align"), world, limit),
                     "after_sft": _score(export_dir(run, "sft"), world, limit)}  # fmt: skip
        print(json.dumps({arm: rows[arm]}), flush=True)
    positive, negative = arms
    summary = {"base": str(args.base), "pair": args.pair, "world_seed": args.world_seed, "images": args.n,
               "bench_items": args.n_bench, "experiment_world": args.experiment_world,
               "sft_trainable": args.sft_trainable.split(","), "sft_tasks": args.sft_tasks or "all",
               "align_trainable": args.align_trainable.split(","),
               "captioning_projector": args.captioning_projector,
               "align_steps": args.align_steps, "sft_steps": args.sft_steps, "seed": args.seed, "arms": rows,
               "control_gap": {when: rows[positive][when]["synth_vqa"] - rows[negative][when]["synth_vqa"]
                               for when in ("zero_shot", "after_sft")}}  # fmt: skip
    (work / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
