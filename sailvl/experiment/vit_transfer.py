"""`vit-transfer`: the ViT after the SAILViT stages vs the untouched ViT, each with the same fresh LLM and budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sailvl.demo.layout import SAILVIT_STAGES, export_dir
from sailvl.demo.runner import Command
from sailvl.experiment.base import (
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
from sailvl.synth.tiny_model import make_tiny_model_dir
from sailvl.train.export import export_llm

NAME = "vit-transfer"
CLAIM = ("SAILViT: a ViT trained through the gradual feature-learning stages helps other LLMs: paired with a new LLM "
         "and projector it beats the untouched ViT at the same budget.")  # fmt: skip
ARMS = ("sailvit-vit", "untouched-vit")
EFFECT = ARMS  # treatment, baseline
# Controls (issue 27: a pretrained ViT vs a random one) need a pretrained tiny ViT that does not exist yet; the
# "untouched" ViT is random, so it is the baseline here, not a control. Until then every verdict is `insensitive`.
CONTROLS: tuple[str, str] | None = None


@dataclass(frozen=True)
class Budgets:
    """Optimizer steps of the SAILViT stages I-III and of the transfer stages (projector, then joint SFT)."""

    size: Size
    sailvit_steps: tuple[int, int, int]
    transfer_steps: tuple[int, int]


QUICK = Budgets(Size(120, 20, 10, 20), (2, 2, 2), (2, 3))
# A fresh LLM learns language, the answer format and the projector from scratch: 1200 joint steps (~2000 steps is
# where the demo's captioner had learned colour and shape), on the demo's 8000-image world.
FULL = Budgets(Size(8000, 100, None), (40, 30, 1500), (200, 1200))


def fresh_llm(world: str | Path, out: str | Path, seed: int) -> Path:
    """A random-init tiny causal LM (+ the world's tokenizer) in `out`, seeded apart from the ViT's model."""
    out = Path(out)
    full = out.parent / f"{out.name}-full-model"
    make_tiny_model_dir(world, full, seed=seed)
    return export_llm(full, out)


def plan(d: SeedDirs, seed: int, quick: bool) -> list[Step]:
    """Train tiny SAILViT from the tiny model, make a fresh LLM, then the same transfer recipe on both ViTs."""
    b = QUICK if quick else FULL
    sailvit, llm = d.runs / "sailvit", d.runs / "fresh-llm"
    steps: list[Step] = [
        synth_command(d, b.size, seed),
        Command("train tiny SAILViT (stages I-III)",
                ["train", "tiny-sailvit", f"vars.world={d.world}", f"vars.model_dir={d.tiny}", f"seed={seed}",
                 *[f"stages.{i}.budget.steps={n}" for i, n in enumerate(b.sailvit_steps)], "--out", str(sailvit)],
                "train-sailvit"),
        Command("make a fresh tiny LLM", ["experiment", "fresh-llm", str(d.world), str(llm), "--seed", str(seed + 1000)],
                "fresh-llm"),
    ]  # fmt: skip
    for arm, vit in zip(ARMS, (export_dir(sailvit, SAILVIT_STAGES[-1]), d.tiny), strict=True):
        run = d.runs / arm
        steps.append(Command(f"transfer {arm} to the fresh LLM",
                             ["train", "tiny-vit-transfer", f"vars.vit={vit}", f"vars.llm={llm}", f"vars.world={d.world}",
                              f"seed={seed}", *[f"stages.{i}.budget.steps={n}" for i, n in enumerate(b.transfer_steps)],
                              "--out", str(run)], f"train-{arm}"))  # fmt: skip
        steps.append(eval_command(d, export_dir(run, "joint-sft"), arm, "final", b.size))
    return steps


def verdict(summary: dict) -> str:
    """`insensitive` unless the controls separate in every seed; then the paired SAILViT-minus-untouched interval."""
    sail, plain = final(summary, ARMS[0]), final(summary, ARMS[1])
    head = verdict_head(summary, CONTROLS, paired_effect(summary, *EFFECT))
    return (f"{head}: open-answer score with the SAILViT ViT {fmt(sail)} vs the untouched ViT {fmt(plain)}, same "
            f"fresh LLM and budget")  # fmt: skip
