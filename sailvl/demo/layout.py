"""Where a demo run puts its artefacts under OUT, and the SAILViT stages whose exports it evaluates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class DemoPaths:
    """Where every artefact of a demo run lives under OUT."""

    out: Path

    def __post_init__(self):
        o = self.out
        self.world, self.tiny = o / "world", o / "tiny-model"
        self.captions_split, self.judge_split = o / "curate" / "caption-split", o / "curate" / "judge-split"
        self.captioner, self.judge = o / "train" / "captioner", o / "train" / "judge"
        self.recaption, self.sft = o / "curate" / "recaption", o / "curate" / "sft-curriculum"
        self.judge_eval, self.heldout = o / "curate" / "judge-eval", o / "heldout-world"
        self.sailvit, self.eval, self.report = o / "train" / "sailvit", o / "eval", o / "report"


SAILVIT_STAGES = ("warmup-adaptation", "fine-grained-alignment", "world-knowledge")


def export_dir(run: Path, stage: str) -> Path:
    """The HF export the trainer writes at the end of `stage`."""
    return run / stage / "export"
