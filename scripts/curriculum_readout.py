"""Size the `curriculum` experiment on a dev world: its three SFT orders through its readout (issue 27).

On a fresh world built with the experiments' settings (a dev world: never the shared test set), exactly the
experiment's steps per arm (sailvl/experiment/curriculum.py): the world's questions split into a task-stratified
curriculum, written in the curriculum / mixed / task-blocked orders, then `tiny-readout` from the base (the
projector aligned on the detailed captions, one SFT pass in file order). Every SFT export is scored on the world's
own bench: open answers, MCQ, yes/no.

    PYTHONPATH=. python scripts/curriculum_readout.py --base runs/base/seed-1 --world-seed 0 --work runs/cur-dev-w0

Prints one JSON line per arm and the control gap (mixed - task-blocked) and effect (curriculum - mixed) of the
final exports; writes WORK/results.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from sailvl.cli import main as cli_main
from sailvl.demo.pipeline import PIPELINES
from sailvl.experiment import curriculum
from sailvl.experiment.pretrained import write_gold_captions
from sailvl.synth import generate_world
from sailvl.train import load_recipe
from sailvl.train.trainer import train_recipe

_spec = importlib.util.spec_from_file_location("base_readout", Path(__file__).with_name("base_readout.py"))
base_readout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base_readout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", type=Path, required=True, help="A base directory (sailvl experiment base --out)."
    )
    parser.add_argument("--work", type=Path, default=Path("runs/curriculum-readout"))
    parser.add_argument("--world-seed", type=int, default=0, help="Seed of the dev world (and of the arms).")
    parser.add_argument("--n", type=int, default=curriculum.FULL.size.world_images, help="Training images.")
    parser.add_argument("--n-bench", type=int, default=600, help="Items per benchmark of the dev world.")
    parser.add_argument("--align-steps", type=int, default=curriculum.FULL.align_steps)
    parser.add_argument("--eval-every", type=int, default=curriculum.FULL.eval_every)
    args = parser.parse_args()
    work, w = args.work.resolve(), args.world_seed
    world = work / "world"
    if not (world / "world.json").is_file():
        generate_world(world, args.n, w, n_bench=args.n_bench, **base_readout.EXPERIMENT_WORLD)
    captions = write_gold_captions(world, work / "captions.jsonl")
    split = work / "sft"
    if not (split / "curriculum" / "curriculum.json").is_file():
        cli_main(["curate", str(PIPELINES / "synth_sft_curriculum.yaml"), f"input.paths=[{world}/sft.jsonl]",
                  f"output_dir={split}", f"curriculum.stratify={curriculum.STRATIFY}"])  # fmt: skip
    counts = curriculum.write_orders(split / "curriculum", work / "orders", w)
    budgets = curriculum.Budgets(curriculum.FULL.size, args.align_steps, args.eval_every)
    rows = {}
    for arm in curriculum.ARMS:
        run = work / arm
        overrides = curriculum.readout_overrides(
            args.base / "model", world, captions, work / "orders" / f"{arm}.jsonl", counts[arm], budgets, w
        )
        train_recipe(load_recipe("tiny-readout", overrides), run, resume="auto")
        rows[arm] = {}
        for model, point in curriculum.curve_points(run):
            state = json.loads((model / "trainer_state.json").read_text())
            rows[arm][point] = {
                "sft_samples": state["stage_samples_seen"],
                **base_readout._score(model, world, None),
            }
        print(json.dumps({arm: rows[arm]}), flush=True)
    final = {arm: rows[arm]["final"]["synth_vqa"] for arm in rows}
    summary = {"base": str(args.base), "world_seed": w, "images": args.n, "bench_items": args.n_bench,
               "align_steps": args.align_steps, "eval_every": args.eval_every, "records": counts, "arms": rows,
               "control_gap": final["mixed"] - final["task-blocked"], "effect": final["curriculum"] - final["mixed"]}  # fmt: skip
    (work / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("control_gap", "effect")}))


if __name__ == "__main__":
    main()
