"""Judge step (SAIL-VL2 style): a judge VLM rates visual information richness (VIR, 1-5) and image-text
alignment (ITA, yes/no) of each caption; a caption is dropped when VIR < min_score or ITA says no."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from sailvl.curation.base import register_step
from sailvl.curation.records import caption_of
from sailvl.curation.vlm import ModelStep, ModelStepParams

_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d.])|\b(one|two|three|four|five)\b", re.IGNORECASE)
_YES_NO = re.compile(
    r"\b(yes|no|true|false|aligned|misaligned|not aligned|correct|incorrect)\b", re.IGNORECASE
)
_YES = {"yes", "true", "aligned", "correct"}


def parse_score(text: str, low: int = 1, high: int = 5) -> int | None:
    """First integer score in [low, high] in a judge answer ('4', 'Score: 4/5', '**four**', 'I rate it 3
    out of 5'); the scale's maximum after 'out of' or '/' is not a score. None when there is none."""
    for match in _NUMBER.finditer(text or ""):
        before = text[: match.start()].rstrip().lower()
        if before.endswith("/") or before.endswith("out of"):
            continue
        raw = match.group(1) or match.group(2)
        value = _WORD_NUMBERS.get(raw.lower()) if raw.isalpha() else float(raw)
        if value is not None and float(value).is_integer() and low <= value <= high:
            return int(value)
    return None


def parse_yes_no(text: str) -> bool | None:
    """True/False from the first yes/no-like word of a judge answer ('Yes.', 'no, the ...'); None if absent."""
    match = _YES_NO.search(text or "")
    if match is None:
        return None
    return match.group(1).lower() in _YES


class JudgeParams(ModelStepParams):
    vir_prompt: str = Field(
        "<image>\nCaption: {caption}\nRate how much visual information this caption gives about the image, "
        "from 1 (almost none) to 5 (rich and detailed). Answer with one number.",
        description="Richness prompt; `{caption}` is replaced by the caption.",
    )
    ita_prompt: str = Field(
        "<image>\nCaption: {caption}\nDoes the caption correctly describe the image? Answer yes or no.",
        description="Alignment prompt; `{caption}` is replaced by the caption.",
    )
    min_score: int = Field(3, ge=1, le=5, description="Reject captions whose richness score is below this.")
    use_vir: bool = Field(True, description="Ask the richness question.")
    use_ita: bool = Field(True, description="Ask the alignment question.")
    max_new_tokens: int = Field(8, ge=1, description="Judges answer in a word.")


@register_step("judge")
class Judge(ModelStep):
    """Score captions with the judge; writes `judge_vir` / `judge_ita` into metadata."""

    Params = JudgeParams

    def process_batch(self, records: list[Any]) -> list[Any]:
        p: JudgeParams = self.params  # type: ignore[assignment]
        captions = [caption_of(r) for r in records]
        vir = (
            self.ask(records, [p.vir_prompt.replace("{caption}", c) for c in captions]) if p.use_vir else None
        )
        ita = (
            self.ask(records, [p.ita_prompt.replace("{caption}", c) for c in captions]) if p.use_ita else None
        )
        results: list[Any] = []
        for i, record in enumerate(records):
            meta = dict(record.metadata)
            reason = None
            if vir is not None:
                score = parse_score(vir[i])
                meta["judge_vir"] = score
                if score is None:
                    reason = "judge_unparseable"
                elif score < p.min_score:
                    reason = "judge_low_richness"
            if ita is not None:
                aligned = parse_yes_no(ita[i])
                meta["judge_ita"] = aligned
                if aligned is None:
                    reason = reason or "judge_unparseable"
                elif not aligned:
                    reason = "judge_misaligned"
            record.metadata = meta  # kept in the rejected record too, for the report's histograms
            results.append(reason if reason else record)
        return results
