"""`vit-transfer`: does a ViT trained through SAILViT's stages help an LLM it was not trained with?

Every arm starts from the same pretrained tiny base (sailvl.experiment.pretrained: a text-pretrained LLM and a
captioning-pretrained ViT, never aligned) and differs only in its vision tower:

- `sailvit-vit`: the base trained through SAILViT's stages I-III on the seed's world; its ViT goes back into the
  base, whose LLM never saw it (the "other LLM" of the claim).
- `plain-vit`: the same number of optimizer steps as one joint stage on the same data (stage III's mix), without
  SAILViT's stages: the compute-matched arm.
- `pretrained-vit`: the base's ViT, untouched: the baseline, and the positive control.
- `random-vit`: the base with its ViT at the random init: the negative control.

Every vision tower comes with the projector it was trained with: the base has its captioning run's (a fresh
projector reads a captioning-pretrained ViT worse than random features within these budgets; EXPERIMENTS.md),
the SAILViT and compute-matched arms their runs' own, the random ViT the random init's.

Each arm then gets the same readout (recipe `tiny-readout`: the projector aligned alone on the world's detailed
captions, scored zero-shot on the shared test set's first rows, then one fixed short SFT of every part, scored on
the whole shared test set). The controls must separate by 10 points in every seed before the SAILViT-minus-
pretrained difference is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sailvl.demo.layout import SAILVIT_STAGES, export_dir
from sailvl.demo.runner import Command
from sailvl.experiment.base import (
    READOUT_X_LABEL,
    SeedDirs,
    Size,
    Step,
    base_steps,
    final,
    fmt,
    paired_effect,
    readout_steps,
    readout_x,
    synth_command,
    verdict_head,
)

NAME = "vit-transfer"
CLAIM = ("SAILViT: a ViT trained through the gradual feature-learning stages helps other LLMs: paired with a new LLM "
         "and projector it beats the untouched ViT at the same budget.")  # fmt: skip
ARMS = ("sailvit-vit", "plain-vit", "pretrained-vit", "random-vit")
EFFECT = ("sailvit-vit", "pretrained-vit")  # treatment, baseline
MATCHED = ("sailvit-vit", "plain-vit")  # the stages vs the same steps without them
CONTROLS: tuple[str, str] | None = ("pretrained-vit", "random-vit")  # positive, negative
USES_BASE = True  # run_experiment passes `base` (a built base shared by every seed, or None: one per seed)
X_LABEL = READOUT_X_LABEL
x_of = readout_x


@dataclass(frozen=True)
class Budgets:
    """Optimizer steps of the SAILViT stages I-III (the plain arm trains their sum in one stage), of the readout
    (alignment, SFT), and the test rows the zero-shot point scores per benchmark (None: all)."""

    size: Size
    sailvit_steps: tuple[int, int, int]
    readout_steps: tuple[int, int]
    zero_shot_limit: int | None


QUICK = Budgets(Size(120, 20, 10, 20), (2, 2, 2), (2, 3), 10)
# SAILViT's steps are the earlier FULL's (chosen before this readout existed); the readout's are those the
# pretrained-vs-random control was measured at on two readout worlds' own benches (dev sets, EXPERIMENTS.md).
FULL = Budgets(Size(4000, 100, None), (40, 30, 1500), (300, 600), 300)


def plan(d: SeedDirs, seed: int, quick: bool, base: Path | None = None) -> list[Step]:
    """The seed's world; the base (built into the seed's directory unless a shared one is given); SAILViT and the
    compute-matched run from the base; each arm's start (the base with that ViT) through the same readout."""
    b = QUICK if quick else FULL
    base, build = base_steps(d, seed, quick, base)
    steps: list[Step] = [synth_command(d, b.size, seed), *build]
    model, captions = base / "model", d.runs / "captions.jsonl"
    sailvit, plain = d.runs / "sailvit", d.runs / "plain-vit-train"
    world = d.world
    mix = (
        f"data.sources=[{{path: {world}/pretrain.jsonl, image_root: {world}, weight: 1}}, "
        f"{{path: {world}/sft.jsonl, image_root: {world}, weight: 3}}]"
    )  # tiny-sailvit stage III's mix
    steps += [
        Command("write the world's detailed captions", ["experiment", "captions", str(world), str(captions)],
                "captions"),
        Command("train SAILViT's stages I-III from the base",
                ["train", "tiny-sailvit", f"vars.world={world}", f"vars.model_dir={model}", f"seed={seed}",
                 *[f"stages.{i}.budget.steps={n}" for i, n in enumerate(b.sailvit_steps)], "--out", str(sailvit)],
                "train-sailvit"),
        Command("train the base as many steps in one joint stage (compute-matched, no SAILViT stages)",
                ["train", "tiny-captioner", f"vars.model_dir={model}", f"vars.world={world}", f"seed={seed}",
                 mix, f"stages.0.budget.steps={sum(b.sailvit_steps)}", "--out", str(plain)], "train-plain-vit"),
    ]  # fmt: skip
    vits = {"sailvit-vit": export_dir(sailvit, SAILVIT_STAGES[-1]), "plain-vit": export_dir(plain, "captioner"),
            "random-vit": base / "init"}  # fmt: skip
    for arm in ARMS:
        start = model
        if arm in vits:
            start = d.runs / f"{arm}-start"
            steps.append(Command(f"put the {arm} and its projector into the base",
                                 ["experiment", "assemble", str(model), str(vits[arm]), str(start), "--projector"],
                                 f"assemble-{arm}"))  # fmt: skip
        steps += readout_steps(d, arm, start, captions, seed, b.readout_steps, b.size, b.zero_shot_limit)
    return steps


def verdict(summary: dict) -> str:
    """`insensitive` unless pretrained beats random ViT by 10 points in every seed; then the paired
    SAILViT-minus-pretrained interval (and, as a clause, SAILViT minus the compute-matched arm)."""
    head = verdict_head(summary, CONTROLS, paired_effect(summary, *EFFECT))
    scores = ", ".join(f"{arm} {fmt(final(summary, arm))}" for arm in ARMS if summary["arms"].get(arm))
    matched = paired_effect(summary, *MATCHED)
    tail = "" if matched is None else (
        f"; SAILViT minus compute-matched {matched.mean:+.2f} points, 95% t interval [{matched.low:.2f}, "
        f"{matched.high:.2f}]")  # fmt: skip
    return f"{head}: open-answer score after the fixed SFT readout: {scores}{tail}"
