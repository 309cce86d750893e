"""`scaling`: the score against the alignment budget on a log grid, from a pretrained base; and the gain from
unfreezing the ViT at the largest budget.

Every point starts from the same pretrained tiny base (sailvl.experiment.pretrained) and ends with the same fixed
SFT (recipe `tiny-readout-sft`, 300 steps of the LLM alone: the ViT and the projector stay as the alignment left
them, so the SFT reads what the alignment built and cannot rebuild the connector itself); only what came between
differs:

- `gold-short`: one alignment run (recipe `tiny-readout-align`: projector and LLM, the readout recaption uses) on
  the world's true short captions, exported at every grid budget (log-spaced steps); each export is read out:
  the grid whose fit `score = a + b ln(steps)` the claim is about. Its largest budget is the positive control;
- `shuffled-short`: the same on the same captions deranged across images. Its largest budget is the negative
  control (gold must beat it by 10 points in every seed), and its grid must show no rising slope (else the gain
  is steps, not what the captions say about the images);
- `none`: the base read out with no alignment: the largest gold budget minus this is the budget's whole effect,
  reported. (It was the first choice of negative control. On four dev worlds, with recaption's one-run readout,
  gold led it by +9.6 to +15.4 points and led shuffled by +12.0 to +43.7, so shuffled became the negative
  control. A check made after that choice, with this experiment's two-run readout, gave +6.3 on dev world 0:
  EXPERIMENTS.md, "scaling".)
- `vit-unfrozen`: the largest budget with the ViT trained in the alignment as well (SAIL-VL's stage II): the fork
  whose gain over the frozen-ViT gold point is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sailvl.demo.layout import export_dir
from sailvl.demo.runner import Command
from sailvl.eval.scaling import LogFit, fit_log_linear, plot_fit
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
from sailvl.experiment.stats import Interval

NAME = "scaling"
CLAIM = ("SAIL-VL: the benchmark score grows linearly in log(training tokens) in both pretraining stages, with a "
         "jump when the ViT is unfrozen (stage II).")  # fmt: skip
X_LABEL = "alignment steps (projector + LLM on the arm's captions; 0: none)"
ARMS = ("gold-short", "shuffled-short", "none", "vit-unfrozen")
GRIDS = ("gold-short", "shuffled-short")
# Positive, negative: both grids' largest budgets (their last points).
CONTROLS: tuple[str, str] | None = ("gold-short", "shuffled-short")
USES_BASE = True  # run_experiment passes `base` (a built base shared by every seed, or None: one per seed)
FROZEN_VIT = ("projector.*", "llm.*")  # recaption's alignment
UNFROZEN_VIT = ("vision.*", "projector.*", "llm.*")
# What the fixed SFT trains, sized on the dev worlds (docs/experiments/scaling/dev/, EXPERIMENTS.md "scaling
# (session 39)"). Session 38's SFT trained every part: gold led shuffled by +6.3 on dev world 0 (and by +8.2 in test
# seed 0, which made that run `insensitive`). With the LLM alone, dev worlds 0 / 1 / 3 / 4 gave +14.7 / +24.7 /
# +16.0 / +14.5, and +13.0 / +25.3 / +13.3 / +19.3 with another SFT seed (projector and LLM: +9.0 / +12.0 / +15.8 /
# +17.0).
SFT_TRAINABLE = ("llm.*",)


@dataclass(frozen=True)
class Budgets:
    """Alignment steps of the grid (ascending, each a multiple of the first: the export interval; the last is
    the run's length) and the fixed SFT's steps after each point."""

    size: Size
    grid: tuple[int, ...]
    sft_steps: int


QUICK = Budgets(Size(120, 20, 10, 20), (2, 4, 8), 3)
# The largest budget and the SFT are recaption's readout (1200 + 300), whose gold-short arm is the positive
# control here; the grid halves down from it. Sized on dev worlds only (EXPERIMENTS.md, "scaling").
FULL = Budgets(Size(4000, 300, None), (75, 150, 300, 600, 1200), 300)


def plan(d: SeedDirs, seed: int, quick: bool, base: Path | None = None) -> list[Step]:
    """The seed's world and base; the short captions and their derangement; one alignment run per grid (and the
    unfrozen fork); the fixed SFT from every grid export and from the base; every SFT evaluated."""
    b = QUICK if quick else FULL
    base, build = base_steps(d, seed, quick, base)
    model = base / "model"
    captions = {
        "gold-short": d.curate / "gold-short.jsonl",
        "shuffled-short": d.curate / "shuffled-short.jsonl",
    }
    steps: list[Step] = [
        synth_command(d, b.size, seed),
        *build,
        Command("write the world's true alt-texts (short gold captions)",
                ["experiment", "captions", str(d.world), str(captions["gold-short"]), "--short"], "gold-short"),
        Command("write the short gold captions shuffled across images",
                ["experiment", "captions", str(d.world), str(captions["shuffled-short"]), "--short",
                 "--shuffle-seed", str(seed)], "shuffled-short"),
    ]  # fmt: skip
    largest = b.grid[-1]
    for arm in GRIDS:
        run = d.runs / f"align-{arm}"
        steps.append(_align(d, arm, model, captions[arm], FROZEN_VIT, largest, b.grid[0], run, seed))
        for budget in b.grid:
            start = export_dir(run, "align") if budget == largest else _periodic(run, budget)
            steps += _readout(d, arm, budget, start, b, seed)
    unfrozen = d.runs / "align-vit-unfrozen"
    steps.append(
        _align(d, "vit-unfrozen", model, captions["gold-short"], UNFROZEN_VIT, largest, 0, unfrozen, seed)
    )
    steps += _readout(d, "vit-unfrozen", largest, export_dir(unfrozen, "align"), b, seed)
    steps += _readout(d, "none", 0, model, b, seed)
    return steps


def _periodic(run: Path, step: int) -> Path:
    """The alignment stage's export written at `step` (stage `eval_every`)."""
    return run / "align" / "exports" / f"step-{step:07d}"


def _align(
    d: SeedDirs,
    arm: str,
    model: Path,
    captions: Path,
    trainable: tuple[str, ...],
    steps: int,
    every: int,
    run: Path,
    seed: int,
) -> Command:
    what = "+".join(p.rstrip(".*") for p in trainable)
    return Command(f"align {what} on the {arm} captions for {steps} steps",
                   ["train", "tiny-readout-align", f"vars.model_dir={model}", f"vars.world={d.world}",
                    f"vars.captions={captions}", f"seed={seed}", f"stages.0.trainable=[{','.join(trainable)}]",
                    f"stages.0.budget.steps={steps}", f"stages.0.eval_every={every}", "--out", str(run)],
                   f"align-{arm}")  # fmt: skip


def _readout(d: SeedDirs, arm: str, budget: int, start: Path, b: Budgets, seed: int) -> list[Command]:
    run = d.runs / f"sft-{arm}-{budget}"
    train = Command(f"the fixed SFT after {budget} alignment steps ({arm})",
                    ["train", "tiny-readout-sft", f"vars.model_dir={start}", f"vars.world={d.world}", f"seed={seed}",
                     f"stages.0.trainable=[{','.join(SFT_TRAINABLE)}]", f"stages.0.budget.steps={b.sft_steps}",
                     "--out", str(run)], f"sft-{arm}-{budget}")  # fmt: skip
    return [train, eval_command(d, export_dir(run, "sft"), arm, f"{budget:06d}", b.size)]


def x_of(results: dict, eval_dir: Path) -> float:
    """Alignment steps: the eval directory's name."""
    return float(eval_dir.name)


def grid_points(summary: dict, arm: str = "gold-short", metric: str = HEADLINE) -> list[tuple[float, float]]:
    """(alignment steps, seed-mean score) of a grid."""
    return [(p["x"], p["metrics"][metric]["mean"]) for p in summary["arms"].get(arm, [])]


def grid_fit(summary: dict, arm: str = "gold-short", metric: str = HEADLINE) -> LogFit:
    """score = a + b ln(steps) over a grid's mean scores: a, b, R^2 and 95% intervals."""
    points = grid_points(summary, arm, metric)
    return fit_log_linear([x for x, _ in points], [y for _, y in points])


def report_section(summary: dict, doc, report_dir: Path) -> None:
    """The gold grid's log-linear fit (plot with the prediction band) and both grids' numbers."""
    plot_fit(grid_points(summary), grid_fit(summary), report_dir / "scaling_fit.png", X_LABEL,
             f"{HEADLINE} vs alignment steps (gold-short)")  # fmt: skip
    for arm in GRIDS:
        fit = grid_fit(summary, arm)
        doc.paragraph(f"{arm}: {HEADLINE} = {fit.a:.2f} + {fit.b:.2f} ln(steps), R^2 = {fit.r2:.3f}, b in "
                      f"[{fit.b_interval[0]:.2f}, {fit.b_interval[1]:.2f}] (95%, over the grid's seed means).")  # fmt: skip
    doc.image("scaling_fit.png", "score vs alignment steps (log scale) with the fit")


def verdict(summary: dict) -> str:
    """`insensitive` unless the largest gold budget beats the largest shuffled one by 10 points in every seed and
    the shuffled grid shows no rising slope (its 95% interval not above 0); then the sign of the gold grid's
    slope interval. The largest budget minus none and the ViT-unfreezing gain are reported beside it."""
    gold = grid_fit(summary).to_dict()
    shuffled = grid_fit(summary, "shuffled-short").to_dict()
    slope = Interval(gold["b"], gold["b_interval"][0], gold["b_interval"][1], gold["n"])
    head = verdict_head(summary, CONTROLS, slope, "slope b", "points per ln(step)", "budgets (seed means)")
    word, clauses = head.split(" ", 1)
    if shuffled["b_interval"][0] > 0 and word != "insensitive":  # the shuffled grid rises too
        head = (
            f"insensitive (shuffled-short rises as well, so the slope is steps, not captions; {clauses[1:]}"
        )
    whole = paired_effect(summary, "gold-short", "none")
    whole = (
        ""
        if whole is None
        else f" (largest minus none {whole.mean:+.1f} [{whole.low:.1f}, {whole.high:.1f}])"
    )
    jump = paired_effect(summary, "vit-unfrozen", "gold-short")
    gain = "" if jump is None else f", paired gain {jump.mean:+.1f} [{jump.low:.1f}, {jump.high:.1f}]"
    unfrozen = fmt(final(summary, "vit-unfrozen")) if summary["arms"].get("vit-unfrozen") else "n/a"
    return (f"{head}: gold-short open-answer score = {gold['a']:.2f} + {gold['b']:.2f} ln(steps), R^2 "
            f"{gold['r2']:.2f}, over {gold['n']} budgets; shuffled-short slope {shuffled['b']:+.2f} "
            f"[{shuffled['b_interval'][0]:.2f}, {shuffled['b_interval'][1]:.2f}]; no alignment "
            f"{fmt(final(summary, 'none'))}{whole}; unfreezing the ViT at the largest budget: {unfrozen} vs frozen "
            f"{fmt(final(summary, 'gold-short'))}{gain}")  # fmt: skip
