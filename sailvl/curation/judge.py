"""Judge step (SAIL-VL2 style): a judge VLM rates visual information richness (VIR, 1-5) and image-text
alignment (ITA, yes/no) of each caption; a caption is dropped when VIR < min_score or ITA says no."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
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


# The synthetic world's judge data asks alignment first, then richness as a second turn; these defaults
# match it (tests check they stay equal) so a judge fine-tuned on judge.jsonl is asked what it learned.
ITA_PROMPT = "<image>\nDoes this caption correctly describe the image? Caption: {caption}\nAnswer yes or no."
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
    max_new_tokens: int = Field(8, ge=1, description="Judges answer in a word.")


@register_step("judge")
class Judge(ModelStep):
    """Score captions with the judge; writes `judge_vir` / `judge_ita` into metadata."""

    Params = JudgeParams

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

    def process_batch(self, records: list[Any]) -> list[Any]:
        p: JudgeParams = self.params  # type: ignore[assignment]
        captions = [caption_of(r) for r in records]
        ita_prompts = [p.ita_prompt.replace("{caption}", c) for c in captions]
        ita = self.ask(records, ita_prompts) if p.use_ita else None
        vir = self.ask(records, self._vir_prompts(captions, ita_prompts, ita)) if p.use_vir else None
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


def measure_judge(step: Judge, labelled: list[tuple[Any, bool]]) -> dict[str, float]:
    """Filter quality of a judge step on `(record, caption_is_correct)` pairs (e.g. judge.jsonl with
    aligned == 'yes' and richness >= 3 as "correct"): share of bad captions rejected (`reject_rate_bad`),
    share of good ones kept (`keep_rate_good`), and precision/recall of "kept" as a detector of good."""
    return judge_rates(labelled, rejected_ids(step, [rec for rec, _ in labelled]))


def rejected_ids(step: Judge, records: list[Any]) -> set[str]:
    """Ids of the records `step` rejects (runs the judge model on all of them)."""
    rejected: set[str] = set()
    step.set_sink(lambda rec, name, reason: rejected.add(rec.id))
    list(step.run(records))
    return rejected


def judge_rates(labelled: list[tuple[Any, bool]], rejected: set[str]) -> dict[str, float]:
    """keep_rate_good, reject_rate_bad, precision and recall of "kept" given the rejected ids."""
    good = [rec.id for rec, ok in labelled if ok]
    bad = [rec.id for rec, ok in labelled if not ok]
    kept_good = sum(i not in rejected for i in good)
    kept_bad = sum(i not in rejected for i in bad)
    return {
        "good": len(good),
        "bad": len(bad),
        "keep_rate_good": kept_good / max(len(good), 1),
        "reject_rate_bad": (len(bad) - kept_bad) / max(len(bad), 1),
        "precision": kept_good / max(kept_good + kept_bad, 1),
        "recall": kept_good / max(len(good), 1),
    }


def judge_file_pairs(
    path: str | Path, image_root: str | Path | None = None, limit: int | None = None
) -> tuple[list[tuple[Any, bool]], dict[str, str]]:
    """Labelled `(record, caption_is_correct)` pairs from a synthetic-world `judge.jsonl` (correct: aligned ==
    'yes' and richness >= 3, the SPEC keep rule; images relative to `image_root`, default the file's folder),
    and each record id's `caption_source` (detailed, partial, corrupted, alt; a corrupted caption as
    `corrupted:<attribute>`, the attribute its corruption changed)."""
    from sailvl.data.sample import Sample

    root = Path(image_root) if image_root is not None else Path(path).parent
    pairs, sources = [], {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            row = json.loads(line)
            record = Sample(
                id=str(row.get("id", f"judge-{i}")),
                source="judge",
                images=[str(root / row["image"])],
                conversation=[
                    {"role": "user", "content": "<image>\nDescribe the image in detail."},
                    {"role": "assistant", "content": row["caption"]},
                ],
            )
            pairs.append((record, row["aligned"] == "yes" and int(row["richness"]) >= 3))
            source = str(row.get("caption_source", "unknown"))
            if source == "corrupted" and row.get("corrupted_attribute"):
                source = f"corrupted:{row['corrupted_attribute']}"
            sources[record.id] = source
    return pairs, sources


def measure_judge_file(
    model: str,
    path: str | Path,
    image_root: str | Path | None = None,
    limit: int | None = None,
    **params: Any,
) -> dict[str, Any]:
    """`measure_judge` of the judge model directory `model` (extra `params` go to the judge step, e.g.
    batch_size) on a labelled `judge.jsonl`, ideally of a held-out world, plus `rejected_by_source`: the
    share of each caption source rejected (`corrupted` overall and `corrupted:<attribute>` per corrupted
    attribute, which shows what the judge can and cannot see)."""
    from sailvl.curation.base import build_step

    pairs, sources = judge_file_pairs(path, image_root, limit)
    rejected = rejected_ids(
        build_step({"type": "judge", "model": str(model), **params}), [r for r, _ in pairs]
    )
    # Corrupted captions count under `corrupted` and under their attribute.
    expand = lambda s: [s, "corrupted"] if s.startswith("corrupted:") else [s]  # noqa: E731
    totals = Counter(k for s in sources.values() for k in expand(s))
    hits = Counter(k for i in rejected for k in expand(sources[i]))
    by_source = {k: hits[k] / totals[k] for k in sorted(totals)}
    return {**judge_rates(pairs, rejected), "rejected_by_source": by_source}
