"""Judge step (SAIL-VL2 style): a judge VLM rates visual information richness (VIR, 1-5) and image-text
alignment (ITA, yes/no) of each caption; a caption is dropped when VIR < min_score or ITA says no.

ITA comes either from the judge's answer to the alignment question (`ita_method: answer`, the paper's way) or
from the caption's likelihood under the judge (`ita_method: likelihood`): the caption is read token by token
after a describe-the-image prompt, and its weakest token (how many nats it sits below the judge's own top
choice there) decides. A wrong colour or digit is a token the judge did not expect; a wording it could have
chosen itself costs little. Small judges learn to describe what they see long before they learn to answer
yes/no about a caption (measured on the synthetic world, BENCHMARKS.md).

Answers are read by `judge_parse` (negation, `key: value`, JSON, markdown, a verdict after reasoning). An answer
it cannot read (unclear, hedged, a refusal) rejects the caption as `judge_unparseable`, since nothing verified
it, unless the other question gave a reason; each such answer counts as `unparsed_ita` / `unparsed_vir` in the
step's stats (manifest.json) and stays verbatim in the rejected record's `judge_<question>_answer`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sailvl.curation.judge_parse import parse_score, parse_yes_no
from sailvl.curation.records import caption_of
from sailvl.curation.step import register_step
from sailvl.curation.vlm import ModelStep, ModelStepParams

# The synthetic world's judge data asks alignment first, then richness as a second turn; these defaults
# match it (tests check they stay equal) so a judge fine-tuned on judge.jsonl is asked what it learned.
ITA_PROMPT = "<image>\nDoes this caption correctly describe the image? Caption: {caption}\nAnswer yes or no."
CAPTION_PROMPT = "<image>\nDescribe the image in detail."
CALIBRATION_FILE = "judge_calibration.json"
DEFAULT_MIN_ALIGNMENT = -1.5
UNPARSED_REASON = "judge_unparseable"  # the judge answered, but not in a way `judge_parse` can read
UNPARSED_ANSWER_CHARS = 500  # of an unreadable answer kept in the rejected record's metadata
VIR_PROMPT = (
    "Rate the visual information richness of the caption from 1 (almost nothing) to 5 (every object and "
    "attribute in the image). Answer with a single number."
)


class JudgeParams(ModelStepParams):
    ita_prompt: str = Field(ITA_PROMPT, description="Alignment (yes/no) prompt; `{caption}` is replaced.")
    vir_prompt: str = Field(
        VIR_PROMPT,
        description="Richness (1-5) prompt. Asked as a follow-up turn after the alignment exchange when both "
        "are used; on its own it is prefixed with the image and caption unless it contains `{caption}`.",
    )
    min_score: int = Field(3, ge=1, le=5, description="Reject captions whose richness score is below this.")
    use_vir: bool = Field(True, description="Ask the richness question.")
    use_ita: bool = Field(True, description="Ask the alignment question.")
    max_new_tokens: int = Field(
        8,
        ge=1,
        description="Judges answer in a word; raise it for a judge that reasons before its verdict (an answer "
        "cut off before the verdict is unparsed, and rejected).",
    )
    ita_method: Literal["answer", "likelihood"] = Field(
        "answer",
        description="'answer': parse the judge's yes/no to `ita_prompt`; 'likelihood': score the caption as the "
        "judge's reply to `caption_prompt` and call it aligned when its weakest token is at least "
        "`min_alignment` (vLLM: from `prompt_logprobs`).",
    )
    caption_prompt: str = Field(CAPTION_PROMPT, description="Prompt the caption answers (likelihood method).")
    min_alignment: float | None = Field(
        None,
        le=0,
        description="Likelihood method: reject a caption whose weakest token is more than this many nats "
        f"(negative) below the judge's top choice at that position. None: the judge dir's {CALIBRATION_FILE} "
        f"(written by `sailvl curate judge-calibrate`), else {DEFAULT_MIN_ALIGNMENT}.",
    )


@register_step("judge")
class Judge(ModelStep):
    """Score captions with the judge; writes `judge_vir` / `judge_ita` into metadata."""

    Params = JudgeParams
    _calibrated: float | None = None  # the judge dir's calibrated threshold, once read

    def _vir_prompts(self, captions: list[str], ita_prompts: list[str], ita: list[str] | None) -> list[Any]:
        p: JudgeParams = self.params  # type: ignore[assignment]
        if ita is not None:
            return [
                [
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": a.strip()},
                    {"role": "user", "content": p.vir_prompt.replace("{caption}", c)},
                ]
                for q, a, c in zip(ita_prompts, ita, captions, strict=True)
            ]
        if "{caption}" in p.vir_prompt:
            return [p.vir_prompt.replace("{caption}", c) for c in captions]
        return [f"<image>\nCaption: {c}\n{p.vir_prompt}" for c in captions]

    def min_alignment(self) -> float:
        """The likelihood threshold: the step's own, else the judge dir's calibration, else the default
        (the calibration file is read once per step object, not per batch)."""
        p: JudgeParams = self.params  # type: ignore[assignment]
        if p.min_alignment is not None:
            return p.min_alignment
        if self._calibrated is None:
            calibrated = load_calibration(p.model) if p.model else None
            self._calibrated = calibrated["min_alignment"] if calibrated else DEFAULT_MIN_ALIGNMENT
        return self._calibrated

    def alignment_scores(self, records: list[Any]) -> list[float]:
        """Likelihood ITA score of each record's caption: its weakest token's margin (nats, <= 0)."""
        p: JudgeParams = self.params  # type: ignore[assignment]
        scored = self.score(records, [p.caption_prompt] * len(records), [caption_of(r) for r in records])
        return [float(s.margins.min()) if len(s.margins) else 0.0 for s in scored]

    def process_batch(self, records: list[Any]) -> list[Any]:
        p: JudgeParams = self.params  # type: ignore[assignment]
        captions = [caption_of(r) for r in records]
        ita_prompts = [p.ita_prompt.replace("{caption}", c) for c in captions]
        ita, ita_scores = None, None
        if p.use_ita and p.ita_method == "likelihood":
            ita_scores = self.alignment_scores(records)
            # The richness question follows an alignment exchange, as in the judge's training data.
            threshold = self.min_alignment()
            ita = ["Yes" if score >= threshold else "No" for score in ita_scores]
        elif p.use_ita:
            ita = self.ask(records, ita_prompts)
        vir = self.ask(records, self._vir_prompts(captions, ita_prompts, ita)) if p.use_vir else None
        results: list[Any] = []
        for i, record in enumerate(records):
            meta = dict(record.metadata)
            if ita_scores is not None:
                meta["judge_ita_score"] = round(ita_scores[i], 4)
            score = self._read(meta, "vir", parse_score, vir[i]) if vir is not None else None
            aligned = self._read(meta, "ita", parse_yes_no, ita[i]) if ita is not None else None
            record.metadata = meta  # kept in the rejected record too, for the report's histograms
            results.append(
                _reject_reason(score, aligned, vir is not None, ita is not None, p.min_score) or record
            )
        return results

    def _read(self, meta: dict[str, Any], question: str, parse: Callable[[str], Any], answer: str) -> Any:
        """Parse one judge answer into `meta[judge_<question>]`; an answer the parser cannot read is counted
        (`unparsed_<question>` in the step's stats, so the manifest shows it even when another reason rejects
        the record) and kept verbatim as `judge_<question>_answer`, so the rejected record says what it was."""
        value = parse(answer)
        meta[f"judge_{question}"] = value
        if value is None:
            self.stats[f"unparsed_{question}"] += 1
            meta[f"judge_{question}_answer"] = answer[:UNPARSED_ANSWER_CHARS]
        return value


def _reject_reason(
    score: int | None, aligned: bool | None, asked_vir: bool, asked_ita: bool, min_score: int
) -> str:
    """Why a judged caption is dropped, or "" to keep it. A verdict the judge did give ("no", a low score) names
    the reason; otherwise an answer that could not be read rejects it as `judge_unparseable`: the caption was
    not verified, and keeping it would let a judge's unreadable "no" through."""
    if asked_ita and aligned is False:
        return "judge_misaligned"
    if asked_vir and score is not None and score < min_score:
        return "judge_low_richness"
    if (asked_vir and score is None) or (asked_ita and aligned is None):
        return UNPARSED_REASON
    return ""


def load_calibration(model: str | Path) -> dict[str, Any] | None:
    """The calibration `sailvl curate judge-calibrate` saved in judge dir `model`, or None."""
    path = Path(model) / CALIBRATION_FILE
    return json.loads(path.read_text()) if path.is_file() else None
