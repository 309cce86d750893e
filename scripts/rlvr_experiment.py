"""RL with verifiable rewards raises held-out exact-match accuracy (issue 25's RLVR acceptance line), on CPU.

For each seed, a tiny model is fine-tuned briefly on a synthetic world's colour questions (short answers) so it
is partly right (the start); the shipped `tiny-rlvr` recipe (GRPO, exact-match reward, G answers per prompt)
then trains it on the same world's training prompts. Start and RL model are scored greedily on the same
held-out items (the world's synth_vqa bench: images never trained on), paired per seed. `--dev` scores on a
second world's bench instead: the split used to choose the settings, so the held-out items never were.

    PYTHONPATH=. python scripts/rlvr_experiment.py --work runs/rlvr   # defaults: the measured run

Prints one JSON line per seed and the summary (also written to WORK/TAG-test-results.json); WORK/TAG_reward_curves.png
plots each seed's per-step reward, entropy and answer length from its metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from sailvl.eval.model_eval import evaluate_model
from sailvl.synth import generate_world
from sailvl.synth.tiny_model import make_tiny_model_dir
from sailvl.train import load_recipe
from sailvl.train.trainer import train_recipe

WORLD = {
    "tasks": "colour",
    "max_objects": 1,
    "object_scale": 2.0,
    "yesno_prob": 0.0,
    "style_weights": "short=1.0",
}
FULL = ["stages.0.lora=null", "stages.0.trainable=[vision.*,projector.*,llm.*]", "stages.0.lr=1.0e-3"]


def _start(work: Path, world: Path, seed: int, steps: int) -> Path:
    overrides = [
        f"vars.world={world}", f"vars.model_dir={work / 'tiny-model'}", f"seed={seed}",
        f"stages.0.budget.steps={steps}", "data.packs_per_batch=1",
    ]  # fmt: skip
    return train_recipe(load_recipe("tiny-lora", overrides + FULL), work / f"start-{seed}", resume="auto")[0]


def _rl(work: Path, world: Path, start: Path, seed: int, tag: str, extra: list[str]) -> Path:
    overrides = [f"vars.world={world}", f"vars.model_dir={start}", f"seed={seed}", *extra]
    return train_recipe(load_recipe("tiny-rlvr", overrides), work / f"{tag}-{seed}", resume="auto")[0]


def _score(model_dir: Path, bench: Path, limit: int | None) -> float:
    results = evaluate_model(model_dir, ["synth_vqa"], model_dir / f"eval-{bench.parent.name}", bench, max_tiles=1,
                             limit=limit or None)  # fmt: skip
    return float(results["benchmarks"]["synth_vqa"]["score"])


def plot_curves(work: Path, seeds: list[int], tag: str) -> Path:
    """Per-step reward and accuracy of each seed's RL run (from its metrics.jsonl) as WORK/reward_curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for seed in seeds:
        rows = [
            json.loads(line) for line in (work / f"{tag}-{seed}" / "metrics.jsonl").read_text().splitlines()
        ]
        steps = [r["step"] for r in rows]
        for ax, key in zip(axes, ("reward", "entropy", "answer_tokens"), strict=True):
            ax.plot(steps, [r[key] for r in rows], label=f"seed {seed}")
    for ax, title in zip(axes, ("reward (exact match, sampled)", "entropy (nats/token)", "answer tokens"),
                         strict=True):  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path = work / f"{tag}_reward_curves.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/rlvr"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=600, help="Training images of the world.")
    parser.add_argument("--start-steps", type=int, default=200, help="SFT steps of each seed's start model.")
    parser.add_argument("--limit", type=int, default=100, help="Held-out items scored (0: all).")
    parser.add_argument(
        "--dev", action="store_true", help="Score on a dev world's bench (for choosing settings)."
    )
    parser.add_argument("--tag", default="rl", help="Name of the RL runs (WORK/TAG-SEED).")
    parser.add_argument("rl", nargs="*", help="Overrides of the tiny-rlvr recipe (key=value).")
    args = parser.parse_args()
    work = args.work
    world, dev = work / "world", work / "dev-world"
    if not (world / "world.json").is_file():
        generate_world(world, args.n, 0, n_bench=200, **WORLD)
        generate_world(dev, 100, 7, n_bench=200, **WORLD)
        make_tiny_model_dir(world, work / "tiny-model", seed=0)
    bench = (dev if args.dev else world) / "bench"
    rows = []
    for seed in args.seeds:
        start = _start(work, world, seed, args.start_steps)
        row = {"seed": seed, "start": _score(start, bench, args.limit)}
        row["rl"] = _score(_rl(work, world, start, seed, args.tag, args.rl), bench, args.limit)
        row["gain"] = row["rl"] - row["start"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    gains = [r["gain"] for r in rows]
    starts = [r["start"] for r in rows]
    summary = {
        "per_seed": rows,
        "mean_start": statistics.mean(starts),
        "mean_rl": statistics.mean(r["rl"] for r in rows),
        "mean_gain": statistics.mean(gains),
        "min_gain": min(gains),
        # Seed spread: how far the start scores of different seeds lie apart (the noise a gain must beat).
        "start_spread": max(starts) - min(starts),
        "start_steps": args.start_steps,
        "rl_overrides": args.rl,
        "items": f"{'dev-world' if args.dev else 'world'}/bench/synth_vqa.tsv"
        + (f" (first {args.limit})" if args.limit else ""),
        "plot": str(plot_curves(work, args.seeds, args.tag)),
    }
    (work / f"{args.tag}-{'dev' if args.dev else 'test'}-results.json").write_text(
        json.dumps(summary, indent=2) + "\n"
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
