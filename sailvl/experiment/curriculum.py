"""`curriculum`: the three-stage SFT curriculum vs the same data mixed in one stage, score vs SFT samples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sailvl.demo.pipeline import PIPELINES
from sailvl.demo.runner import Command
from sailvl.experiment.base import (
    HEADLINE,
    SeedDirs,
    Size,
    Step,
    eval_command,
    final,
    fmt,
    paired_effect,
    synth_command,
    verdict_head,
)
from sailvl.train.checkpoint import read_trainer_state

NAME = "curriculum"
CLAIM = ("SAIL-VL quality scaling: with the SFT curriculum (stages rising in difficulty, complexity, relevance) the "
         "score grows near-linearly in SFT samples; with all SFT data mixed in one stage it grows logarithmically.")  # fmt: skip
X_LABEL = "SFT samples seen"
ARMS = ("curriculum", "mixed")
EFFECT = ARMS  # treatment, baseline (final score; the curve shapes are reported beside it)
# Controls (issue 27: a task-blocked order vs mixed) are not built yet: until then every verdict is `insensitive`.
CONTROLS: tuple[str, str] | None = None
SFT_STAGES = ("sft-knowledge", "sft-instruction", "sft-preference")


@dataclass(frozen=True)
class Budgets:
    """Samples of the shared pretraining stages and of the three SFT stages; exports every `eval_every` steps."""

    size: Size
    pretrain_samples: int
    sft_samples: tuple[int, int, int]
    eval_every: int


QUICK = Budgets(Size(120, 20, 10, 20), 8, (8, 8, 8), 0)
# Smaller budgets left every checkpoint at chance (EXPERIMENTS.md, "What was tried before these budgets").
# 8000 images give ~13K SFT records in stages of unequal size (the split keeps every score rising); each
# SFT stage reads a record at most once. 6000 SFT samples: what fit the session's compute for 3 seeds.
FULL = Budgets(Size(8000, 100, None), 1500, (1500, 3000, 1500), 250)


def plan(d: SeedDirs, seed: int, quick: bool) -> list[Step]:
    """Split sft.jsonl into a curriculum, train both arms (same seed, same total samples), evaluate checkpoints."""
    b = QUICK if quick else FULL
    split = d.curate / "sft"
    steps: list[Step] = [
        synth_command(d, b.size, seed),
        Command("score SFT data and split it into a 3-stage curriculum",
                ["curate", str(PIPELINES / "synth_sft_curriculum.yaml"), f"input.paths=[{d.world}/sft.jsonl]",
                 f"output_dir={split}"], "sft-curriculum"),
    ]  # fmt: skip
    budgets = [f"stages.{i}.budget.tokens=null" for i in (0, 1)]
    budgets += [f"stages.{i}.budget.samples={b.pretrain_samples}" for i in (0, 1)]
    budgets += [f"stages.{i + 2}.budget.samples={n}" for i, n in enumerate(b.sft_samples)]
    budgets += [f"stages.{i + 2}.eval_every={b.eval_every}" for i in range(3)]
    for arm in ARMS:
        run = d.runs / arm
        mode = ["sft_curriculum.mode=mixed"] if arm == "mixed" else []
        steps.append(Command(f"train {arm}", ["train", "tiny-sailvl-curriculum", f"vars.world={d.world}",
                                              f"vars.model_dir={d.tiny}", f"vars.curriculum={split / 'curriculum'}",
                                              f"seed={seed}", *budgets, *mode, "--out", str(run)], f"train-{arm}"))  # fmt: skip
        steps.append(_checkpoint_evals(d, arm, run, b.size))
    return steps


def _checkpoint_evals(d: SeedDirs, arm: str, run: Path, size: Size) -> Step:
    # The checkpoints exist only after training: every SFT export (periodic and stage-final) is a curve point.
    def build() -> list[Command]:
        names = ("sft-mixed",) if arm == "mixed" else SFT_STAGES
        models = [
            m for n in names for m in [*sorted((run / n / "exports").glob("step-*")), run / n / "export"]
        ]
        return [eval_command(d, m, arm, f"{m.parent.name if m.name == 'export' else m.parent.parent.name}-{m.name}",
                             size) for m in models]  # fmt: skip

    return build


def x_of(results: dict, eval_dir: Path) -> float:
    """SFT samples: the checkpoint's cumulative samples minus those of the shared pretraining stages."""
    run = eval_dir.parent.parent.parent / "runs" / eval_dir.parent.name
    return float(
        results["samples_seen"] - read_trainer_state(run / "pretrain-advance" / "export")["samples_seen"]
    )


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
    """`insensitive` unless the controls separate in every seed; then the paired curriculum-minus-mixed interval of
    the final score, with the curves' shapes (the claim: curriculum near-linear, mixed logarithmic)."""
    cur, mix = final(summary, "curriculum"), final(summary, "mixed")
    fc, fm = shape_fits(summary["arms"]["curriculum"]), shape_fits(summary["arms"]["mixed"])
    head = verdict_head(summary, CONTROLS, paired_effect(summary, *EFFECT))
    return (f"{head}: final open-answer score curriculum {fmt(cur)} vs mixed {fmt(mix)}; R^2 linear/log: "
            f"curriculum {fc['linear_r2']:.2f}/{fc['log_r2']:.2f}, mixed {fm['linear_r2']:.2f}/{fm['log_r2']:.2f}")  # fmt: skip
