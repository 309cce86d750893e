"""`curriculum`: the SFT data in a curriculum order vs the same data mixed, from a pretrained base.

Every arm starts from the same pretrained tiny base (sailvl.experiment.pretrained) and runs the same readout
(recipe `tiny-readout`: the projector aligned alone on the world's detailed captions, then one SFT of every part);
only the order in which the SFT reads the world's questions differs. Each arm reads every question exactly once,
in file order, under one LR schedule, so the arms are equal in samples and differ in nothing but the order:

- `curriculum`: the curation's 3-stage split (SAIL-VL's quality scaling: difficulty, complexity and relevance
  rise from stage to stage), stratified by task so that every stage holds each task's share (without that, the
  world's task-level difficulty makes the curriculum an order by task: colour and shape first, digits last);
- `mixed`: every question in one shuffled order: the baseline, and the positive control;
- `task-blocked`: the questions grouped by task (in task-name order), each group shuffled: the negative control.
  A model that forgets the earlier blocks is the effect a data order can have; the experiment can see order only
  if mixed beats blocked by 10 points in every seed.

The SFT exports a checkpoint every `eval_every` steps: each is a point of the score-vs-SFT-samples curve (the
claim is about its shape), the last the headline.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sailvl.demo.layout import export_dir
from sailvl.demo.pipeline import PIPELINES
from sailvl.demo.runner import Command
from sailvl.experiment.base import (
    HEADLINE,
    SeedDirs,
    Size,
    Step,
    base_steps,
    eval_command,
    final,
    fmt,
    paired_effect,
    synth_command,
    verdict_head,
)

NAME = "curriculum"
CLAIM = ("SAIL-VL quality scaling: with the SFT curriculum (stages rising in difficulty, complexity, relevance) the "
         "score grows near-linearly in SFT samples; with all SFT data mixed in one stage it grows logarithmically.")  # fmt: skip
X_LABEL = "SFT samples seen"
ARMS = ("curriculum", "mixed", "task-blocked")
EFFECT = ("curriculum", "mixed")  # treatment, baseline (final score; the curve shapes are reported beside it)
CONTROLS: tuple[str, str] | None = ("mixed", "task-blocked")  # positive, negative
USES_BASE = True  # run_experiment passes `base` (a built base shared by every seed, or None: one per seed)
ORDERS = "orders.json"
STRATIFY = "task"


@dataclass(frozen=True)
class Budgets:
    """World size, the readout's alignment steps, and the SFT's export interval in steps (0: the final only).
    The SFT itself reads every question of the world once: its length is the world's, equal in every arm."""

    size: Size
    align_steps: int
    eval_every: int


QUICK = Budgets(Size(120, 20, 10, 20), 2, 5)
FULL = Budgets(Size(4000, 300, None), 300, 150)


def write_orders(curriculum_dir: Path, out_dir: Path, seed: int, field: str = STRATIFY) -> dict[str, int]:
    """Each arm's SFT file under `out_dir` (`ARM.jsonl`) from a curation curriculum directory (`stage-K.jsonl`):
    the stages in order, each shuffled; all records shuffled; the records grouped by `field` (sorted), each
    group shuffled. The same records in every file. Writes and returns {arm: records} (`orders.json`)."""
    stages = sorted(curriculum_dir.glob("stage-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))
    records = [[line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()] for p in stages]
    rng = random.Random(seed)

    def shuffled(lines: list[str]) -> list[str]:
        return rng.sample(lines, len(lines))

    every = [line for stage in records for line in stage]
    groups: dict[str, list[str]] = {}
    for line in every:
        groups.setdefault(str(json.loads(line).get("metadata", {}).get(field)), []).append(line)
    orders = {
        "curriculum": [line for stage in records for line in shuffled(stage)],
        "mixed": shuffled(every),
        "task-blocked": [line for value in sorted(groups) for line in shuffled(groups[value])],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for arm, lines in orders.items():
        (out_dir / f"{arm}.jsonl").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    counts = {arm: len(lines) for arm, lines in orders.items()}
    (out_dir / ORDERS).write_text(json.dumps(counts, indent=1))
    return counts


def readout_overrides(
    model: Path, world: Path, captions: Path, questions: Path, samples: int, b: Budgets, seed: int
) -> list[str]:
    """`tiny-readout` overrides of one arm: the shared alignment, then an SFT over `questions` in file order
    (shuffle_block 0) for exactly `samples` samples (one pass), exporting every `eval_every` steps."""
    return [f"vars.model_dir={model}", f"vars.world={world}", f"vars.captions={captions}", f"seed={seed}",
            f"stages.0.budget.steps={b.align_steps}", "stages.1.budget.steps=null",
            f"stages.1.budget.samples={samples}", f"stages.1.data.sources=[{{path: {questions}}}]",
            "stages.1.data.shuffle_block=0", f"stages.1.eval_every={b.eval_every}"]  # fmt: skip


def plan(d: SeedDirs, seed: int, quick: bool, base: Path | None = None) -> list[Step]:
    """The seed's world and base; the world's questions split into a task-stratified curriculum and written in
    each arm's order; each arm's readout; every SFT export evaluated on the shared test set."""
    b = QUICK if quick else FULL
    base, build = base_steps(d, seed, quick, base)
    split, orders, captions = d.curate / "sft", d.curate / "orders", d.curate / "captions.jsonl"
    steps: list[Step] = [
        synth_command(d, b.size, seed),
        *build,
        Command("write the world's detailed captions (the shared alignment)",
                ["experiment", "captions", str(d.world), str(captions)], "captions"),
        Command("score the SFT questions and split them into a 3-stage curriculum, stratified by task",
                ["curate", str(PIPELINES / "synth_sft_curriculum.yaml"), f"input.paths=[{d.world}/sft.jsonl]",
                 f"output_dir={split}", f"curriculum.stratify={STRATIFY}"], "sft-curriculum"),
        Command("write each arm's order of the questions",
                ["experiment", "orders", str(split / "curriculum"), str(orders), "--seed", str(seed)], "orders"),
    ]  # fmt: skip
    for arm in ARMS:
        steps += [
            _readout(d, arm, base / "model", captions, orders, b, seed),
            _checkpoint_evals(d, arm, b.size),
        ]
    return steps


def _readout(d: SeedDirs, arm: str, model: Path, captions: Path, orders: Path, b: Budgets, seed: int) -> Step:
    # Built once the orders exist: the SFT's sample budget is the number of questions.
    def build() -> list[Command]:
        samples = json.loads((orders / ORDERS).read_text())[arm]
        overrides = readout_overrides(model, d.world, captions, orders / f"{arm}.jsonl", samples, b, seed)
        return [Command(f"read out {arm}: align the projector, then one pass of SFT in the {arm} order",
                        ["train", "tiny-readout", *overrides, "--out", str(d.runs / arm)], f"readout-{arm}")]  # fmt: skip

    return build


def curve_points(run: Path) -> list[tuple[Path, str]]:
    """(export, point name) of a readout run's SFT: its periodic exports in step order (`step-NNNNNNN`), then the
    stage's final export (`final`)."""
    periodic = sorted((run / "sft" / "exports").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return [(m, m.name) for m in periodic] + [(export_dir(run, "sft"), "final")]


def _checkpoint_evals(d: SeedDirs, arm: str, size: Size) -> Step:
    # The SFT's periodic exports exist only after training: each one and the final export is a curve point.
    def build() -> list[Command]:
        return [eval_command(d, m, arm, name, size) for m, name in curve_points(d.runs / arm)]

    return build


def x_of(results: dict, eval_dir: Path) -> float:
    """SFT samples: the evaluated checkpoint's samples within the SFT stage."""
    return float(results["stage_samples_seen"])


def shape_fits(points: list[dict], metric: str = HEADLINE) -> dict:
    """R^2 of a linear and of a logarithmic fit of mean score vs SFT samples (NaN with fewer than 3 points)."""
    xs = np.array([p["x"] for p in points if p["x"] > 0])
    ys = np.array([p["metrics"][metric]["mean"] for p in points if p["x"] > 0])
    if xs.size < 3 or np.ptp(ys) == 0:
        return {"linear_r2": math.nan, "log_r2": math.nan}
    return {"linear_r2": _r2(xs, ys), "log_r2": _r2(np.log(xs), ys)}


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return float(1 - residual @ residual / ((y - y.mean()) @ (y - y.mean())))


def report_section(summary: dict, doc, report_dir: Path) -> None:
    """R^2 of the linear and logarithmic fits of each arm's curve."""
    rows = [
        [arm, *(f"{v:.3f}" for v in shape_fits(points).values())] for arm, points in summary["arms"].items()
    ]
    doc.paragraph(
        f"Shape of {HEADLINE} vs SFT samples (seed means): R^2 of score = a + b x and of score = a + b ln x."
    )
    doc.table(["arm", "linear R^2", "log R^2"], rows)


def verdict(summary: dict) -> str:
    """`insensitive` unless mixed beats task-blocked by 10 points in every seed; then the paired
    curriculum-minus-mixed interval of the final score, with the curves' shapes (the claim: curriculum
    near-linear, mixed logarithmic)."""
    head = verdict_head(summary, CONTROLS, paired_effect(summary, *EFFECT))
    scores = ", ".join(f"{arm} {fmt(final(summary, arm))}" for arm in ARMS if summary["arms"].get(arm))
    fits = "; ".join(
        f"{arm} {f['linear_r2']:.2f}/{f['log_r2']:.2f}"
        for arm in EFFECT
        if summary["arms"].get(arm)
        for f in [shape_fits(summary["arms"][arm])]
    )
    return f"{head}: final open-answer score {scores}; R^2 linear/log: {fits}"
