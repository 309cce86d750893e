"""Experiment plumbing: per-seed plans of `sailvl` commands, resumable runs, metrics per run, mean/std over seeds."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sailvl.demo.layout import export_dir
from sailvl.demo.pipeline import WORLD_FLAGS
from sailvl.demo.report import bench_label
from sailvl.demo.runner import Command, StepRunner
from sailvl.errors import SailvlError
from sailvl.experiment.stats import (
    Interval,
    control_gaps,
    controls_sentence,
    paired_differences,
    t_interval,
    verdict_word,
)

BENCHES = ("synth_vqa", "synth_mcq", "synth_yesno")
# The format a tiny model learns at this scale (MCQ letters and yes/no stay near chance; BENCHMARKS.md):
# verdicts read it, the tables show every format.
HEADLINE = "open answer"
# Secondary metric: the most likely of each task's answers (sailvl.eval.forced_choice).
FORCED_CHOICE = "forced choice"
SUMMARY = "results.json"

# A step is a command, or a function building commands once earlier steps wrote what they need (exports).
Step = Command | Callable[[], list[Command]]


# The held-out test set every seed and arm of an experiment scores: one world of its own seed, never a training
# world's seed (those are 0, 1, 2, ...). Each seed's own world bench is its dev set, the only set to size budgets on.
TEST_SEED = 1_000_003
TEST_DIR = "shared-test"


@dataclass(frozen=True)
class Size:
    """World size shared by an experiment's arms: training images, items per dev benchmark (the seed world's
    bench), rows evaluated, and items per benchmark of the shared test set (synth_vqa's split over its 3 tasks)."""

    world_images: int
    bench_items: int
    eval_limit: int | None
    test_items: int = 1500


@dataclass
class SeedDirs:
    """Where one seed's artefacts live: OUT/seed-S/{world, tiny-model, curate, runs, eval, recipes, logs, base (its
    own pretrained base, when the seeds share none)}; the test set all seeds share is OUT/shared-test."""

    root: Path

    def __post_init__(self):
        r = self.root
        self.world, self.tiny, self.curate = r / "world", r / "tiny-model", r / "curate"
        self.runs, self.eval, self.recipes = r / "runs", r / "eval", r / "recipes"
        self.test, self.base = r.parent / TEST_DIR, r / "base"


def synth_command(d: SeedDirs, size: Size, seed: int) -> Command:
    """The seed's synthetic world and a random-init tiny model (the demo's learnable world settings)."""
    args = ["synth", "--out", str(d.world), "--n", str(size.world_images), "--seed", str(seed),
            "--n-bench", str(size.bench_items), *WORLD_FLAGS, "--tiny-model", str(d.tiny)]  # fmt: skip
    return Command("synthesise the world and a tiny model", args, "synth")


def test_set_command(out: Path, size: Size) -> Command:
    """The shared held-out test world (`TEST_SEED`, the experiments' world settings): only its bench is read."""
    args = ["synth", "--out", str(out / TEST_DIR), "--n", "20", "--seed", str(TEST_SEED),
            "--n-bench", str(size.test_items), *WORLD_FLAGS]  # fmt: skip
    return Command("synthesise the shared test set", args, "shared-test")


def eval_command(
    d: SeedDirs, model: Path, arm: str, point: str, size: Size, limit: int | None = None
) -> Command:
    """`sailvl eval` of `model` on the shared test set's benchmarks (the same items for every seed and arm) into
    eval/ARM/POINT; the first `limit` rows per benchmark (default `size.eval_limit`; None: all)."""
    benches = [a for b in BENCHES for a in ("--bench", str(d.test / "bench" / f"{b}.tsv"))]
    rows = limit or size.eval_limit
    row_args = ["--limit", str(rows)] if rows else []
    out = d.eval / arm / point
    return Command(f"evaluate {arm} {point}", ["eval", "--model", str(model), *benches, *row_args, "--forced-choice",
                                               "--out", str(out)], f"eval-{arm}-{point}")  # fmt: skip


# The readout of every experiment that starts from the pretrained base (recipe `tiny-readout`): each arm is scored
# zero-shot after the projector's alignment, then after one fixed SFT (the headline, the last point).
ZERO_SHOT, FINAL = "zero-shot", "final"
READOUT_X_LABEL = "readout point (0: zero-shot after alignment, 1: after the fixed SFT)"


def readout_x(results: dict, eval_dir: Path) -> float:
    """The readout point of an eval directory: 0 zero-shot, 1 after SFT (the last point, which verdicts read)."""
    return 0.0 if eval_dir.name == ZERO_SHOT else 1.0


def base_steps(d: SeedDirs, seed: int, quick: bool, base: Path | None) -> tuple[Path, list[Command]]:
    """The base a seed's arms start from: `base` when every seed shares one, else built into the seed's
    directory by `sailvl experiment base` (the quick one for a quick run). Returns (base dir, its commands)."""
    if base is not None:
        return base, []
    args = ["experiment", "base", "--seed", str(seed), "--out", str(d.base), *(["--quick"] if quick else [])]
    return d.base, [Command("build the pretrained base", args, "base")]


def readout_steps(
    d: SeedDirs,
    arm: str,
    start: Path,
    captions: Path,
    seed: int,
    steps: tuple[int, int],
    size: Size,
    zero_shot_limit: int | None,
    align_trainable: tuple[str, ...] | None = None,
) -> list[Command]:
    """`tiny-readout` from `start` aligning on `captions` (alignment and SFT steps), then its two evals: the
    alignment's export on the test set's first `zero_shot_limit` rows, the SFT's on the whole test set.
    `align_trainable`: what the alignment trains (None: the recipe's, the projector alone)."""
    run = d.runs / arm
    what = "the projector" if align_trainable is None else "+".join(p.rstrip(".*") for p in align_trainable)
    trainable = [] if align_trainable is None else [f"stages.0.trainable=[{','.join(align_trainable)}]"]
    train = Command(f"read out {arm}: align {what}, then the fixed SFT",
                    ["train", "tiny-readout", f"vars.model_dir={start}", f"vars.world={d.world}",
                     f"vars.captions={captions}", f"seed={seed}", *trainable,
                     *[f"stages.{i}.budget.steps={n}" for i, n in enumerate(steps)], "--out", str(run)],
                    f"readout-{arm}")  # fmt: skip
    return [
        train,
        eval_command(d, export_dir(run, "align"), arm, ZERO_SHOT, size, limit=zero_shot_limit),
        eval_command(d, export_dir(run, "sft"), arm, FINAL, size),
    ]


def run_metrics(results: dict) -> dict[str, float]:
    """Scores (percent) of one `sailvl eval` results.json: average, per answer format, open answer per task, and
    the open answers' likelihood forced choice (`forced choice`) when the eval computed it."""
    metrics = {"average": float(results["average"])}
    forced = results["benchmarks"].get("synth_vqa", {}).get("forced_choice")
    if forced and forced.get("score") is not None:
        metrics[FORCED_CHOICE] = float(forced["score"])
    for name, bench in sorted(results["benchmarks"].items()):
        metrics[bench_label(name)] = float(bench["score"])
    for task, row in sorted(results["benchmarks"].get("synth_vqa", {}).get("per_category", {}).items()):
        metrics[f"open:{task}"] = float(row["accuracy"])
    return metrics


def mean_std(values: list[float]) -> dict:
    """{mean, std (sample, 0 for one value), values}."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


def _walk_steps(log_dir: Path, steps: list[Step], unfinished: Callable[[Command, Path], bool]):
    """Every command of `steps` in order with its wall seconds from its `.done` marker. A command without a
    marker goes to `unfinished(command, marker)`, which either finishes it (writes the marker, returns True) or
    stops the walk (returns False: the result is then None). A later step is built only once the ones before it
    are done."""
    done = []
    for step in steps:
        for command in step() if callable(step) else [step]:
            marker = log_dir / f"{command.log_name}.done"
            if not marker.is_file() and not unfinished(command, marker):
                return None
            done.append((command, float(marker.read_text().strip() or 0)))
    return done


def run_steps(runner: StepRunner, steps: list[Step]) -> list[tuple[Command, float]]:
    """Run steps in order; a command whose `.done` marker exists (an earlier run finished it) is skipped.

    Returns every command with its wall seconds (a skipped one's from its marker)."""

    def run(command: Command, marker: Path) -> bool:
        runner.run(command)
        marker.write_text(f"{runner.results[-1].seconds:.1f}\n")
        return True

    return _walk_steps(runner.log_dir, steps, run)


def finished_commands(log_dir: Path, steps: list[Step]) -> list[tuple[Command, float]] | None:
    """Every command of a seed's plan with its wall seconds from its `.done` marker, without running anything;
    None while one is unfinished."""
    return _walk_steps(log_dir, steps, lambda command, marker: False)


def collect(seed_roots: list[Path], x_of: Callable[[dict, Path], float]) -> dict[str, list[dict]]:
    """Per arm, the curve points over seeds: [{x, metrics: {name: mean_std}}] ordered by x (index-aligned)."""
    per_seed: dict[str, list[list[tuple[float, dict]]]] = {}
    for root in seed_roots:
        for arm_dir in sorted(p for p in (root / "eval").glob("*") if p.is_dir()):
            points = []
            for path in sorted(arm_dir.glob("*/results.json")):
                results = json.loads(path.read_text())
                points.append((x_of(results, path.parent), run_metrics(results)))
            per_seed.setdefault(arm_dir.name, []).append(sorted(points, key=lambda p: p[0]))
    arms = {}
    for arm, seeds in per_seed.items():
        n_points = min(len(s) for s in seeds)
        arms[arm] = [
            {"x": mean_std([s[i][0] for s in seeds])["mean"],
             "metrics": {m: mean_std([s[i][1][m] for s in seeds]) for m in seeds[0][i][1]}}
            for i in range(n_points)
        ]  # fmt: skip
    return arms


def samples_x(results: dict, eval_dir: Path) -> float:
    """Default x of a point: the evaluated checkpoint's cumulative samples seen."""
    return float(results.get("samples_seen") or 0)


def final(summary: dict, arm: str, metric: str = HEADLINE) -> dict:
    """mean_std of `metric` at an arm's last point (SailvlError naming the arm when it has no results)."""
    points = summary["arms"].get(arm)
    if not points:
        raise SailvlError(f"experiment {summary['experiment']} has no evaluated runs of arm {arm!r}")
    return points[-1]["metrics"][metric]


def fmt(v: dict) -> str:
    """`mean +- std` of a mean_std dict, one decimal."""
    return f"{v['mean']:.1f} +- {v['std']:.1f}"


def final_values(summary: dict, arm: str, metric: str = HEADLINE) -> list[float]:
    """Per-seed values of `metric` at an arm's last point, in the summary's seed order ([] when not evaluated)."""
    points = summary["arms"].get(arm)
    return list(points[-1]["metrics"][metric]["values"]) if points else []


def seed_control_gaps(summary: dict, controls: tuple[str, str] | None, metric: str = HEADLINE) -> list[float]:
    """Positive minus negative control at their last points, per seed ([] without controls or results)."""
    if controls is None:
        return []
    positive, negative = (final_values(summary, arm, metric) for arm in controls)
    if not positive or len(positive) != len(negative):
        return []
    return control_gaps(positive, negative)


def paired_effect(summary: dict, treatment: str, baseline: str, metric: str = HEADLINE) -> Interval | None:
    """t interval over seeds of treatment minus baseline at their last points (same items per seed)."""
    a, b = final_values(summary, treatment, metric), final_values(summary, baseline, metric)
    if not a or len(a) != len(b):
        return None
    return t_interval(paired_differences(a, b))


def verdict_head(
    summary: dict,
    controls: tuple[str, str] | None,
    effect: Interval | None,
    label: str = "paired effect",
    unit: str = "points",
    over: str = "seed(s)",
) -> str:
    """`WORD (controls clause; effect clause)`: the start of every experiment's verdict string. The effect is a
    paired per-seed difference by default; `label` / `unit` / `over` name another (scaling: the fitted slope)."""
    gaps = summary.get("control_gap_per_seed")
    gaps = seed_control_gaps(summary, controls) if gaps is None else gaps
    word = verdict_word(gaps, effect)
    clauses = [controls_sentence(gaps, controls)]
    if effect is not None:
        clauses.append(f"{label} {effect.mean:+.2f} {unit}, 95% t interval [{effect.low:.2f}, {effect.high:.2f}] "
                       f"over {effect.n} {over}")  # fmt: skip
    return f"{word} ({'; '.join(clauses)})"
