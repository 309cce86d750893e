"""Judge step (SAIL-VL2 style): a judge VLM rates visual information richness (VIR, 1-5) and image-text
alignment (ITA, yes/no) of each caption; a caption is dropped when VIR < min_score or ITA says no.

ITA comes either from the judge's answer to the alignment question (`ita_method: answer`, the paper's way) or
from the caption's likelihood under the judge (`ita_method: likelihood`): the caption is read token by token
after a describe-the-image prompt, and its weakest token (how many nats it sits below the judge's own top
choice there) decides. A wrong colour or digit is a token the judge did not expect; a wording it could have
chosen itself costs little. Small judges learn to describe what they see long before they learn to answer
yes/no about a caption (measured on the synthetic world, BENCHMARKS.md)."""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sailvl.curation.base import register_step
from sailvl.curation.records import caption_of
from sailvl.curation.vlm import ModelStep, ModelStepParams
from sailvl.errors import SailvlError

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
CAPTION_PROMPT = "<image>\nDescribe the image in detail."
CALIBRATION_FILE = "judge_calibration.json"
DEFAULT_MIN_ALIGNMENT = -1.5
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
    ita_method: Literal["answer", "likelihood"] = Field(
        "answer",
        description="'answer': parse the judge's yes/no to `ita_prompt`; 'likelihood': score the caption as the "
        "judge's reply to `caption_prompt` and call it aligned when its weakest token is at least "
        "`min_alignment` (transformers scoring, whatever `backend` generates).",
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


def best_threshold(aligned: list[float], misaligned: list[float]) -> float:
    """The score threshold (keep when score >= it) with the best balanced accuracy between `aligned` and
    `misaligned` scores, placed midway to the next lower score; ties go to the lower threshold."""
    if not aligned or not misaligned:
        raise SailvlError("calibration needs aligned and misaligned captions")
    good, bad = sorted(aligned), sorted(misaligned)
    values = sorted(set(good) | set(bad))
    best, best_acc = values[0], -1.0
    for value in values:
        kept = len(good) - bisect_left(good, value)
        acc = kept / len(good) + bisect_left(bad, value) / len(bad)
        if acc > best_acc + 1e-12:
            best, best_acc = value, acc
    below = values.index(best) - 1
    return (best + values[below]) / 2 if below >= 0 else best


def load_calibration(model: str | Path) -> dict[str, Any] | None:
    """The calibration `sailvl curate judge-calibrate` saved in judge dir `model`, or None."""
    path = Path(model) / CALIBRATION_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def calibrate_judge(
    model: str | Path,
    path: str | Path,
    image_root: str | Path | None = None,
    limit: int | None = None,
    save: bool = True,
    **params: Any,
) -> dict[str, Any]:
    """Pick the likelihood judge's `min_alignment` on labelled pairs (the judge's own training `judge.jsonl`,
    never the pairs it is measured on): the best balanced accuracy between correct captions (detailed,
    partial) and corrupted ones. Alt-texts are left out: they are short web strings that the richness score
    rejects, and they read as unlikely whether right or wrong. With `save`, the result goes to the judge dir's
    CALIBRATION_FILE, which every likelihood judge step on that dir then uses."""
    from sailvl.curation.base import build_step

    pairs, sources = judge_file_pairs(path, image_root, limit)
    records = [r for r, _ in pairs if sources[r.id] not in ("alt", "unknown")]
    step = build_step({"type": "judge", "model": str(model), **params, "ita_method": "likelihood"})
    step.setup()
    scores = dict(zip([r.id for r in records], step.alignment_scores(records), strict=True))
    aligned = [v for i, v in scores.items() if not sources[i].startswith("corrupted")]
    misaligned = [v for i, v in scores.items() if sources[i].startswith("corrupted")]
    threshold = best_threshold(aligned, misaligned)
    result = {
        "min_alignment": round(threshold, 4),
        "calibrated_on": str(path),
        "aligned": len(aligned),
        "corrupted": len(misaligned),
        "keep_rate_aligned": sum(a >= threshold for a in aligned) / len(aligned),
        "reject_rate_corrupted": sum(m < threshold for m in misaligned) / len(misaligned),
    }
    if save:
        (Path(model) / CALIBRATION_FILE).write_text(json.dumps(result, indent=1) + "\n")
    return result


def measure_judge_file(
    model: str,
    path: str | Path,
    image_root: str | Path | None = None,
    limit: int | None = None,
    **params: Any,
) -> dict[str, Any]:
    """`measure_judge` of the judge model directory `model` (extra `params` go to the judge step, e.g.
    batch_size or ita_method) on a labelled `judge.jsonl`, ideally of a held-out world, plus
    `rejected_by_source`: the share of each caption source rejected (`corrupted` overall and
    `corrupted:<attribute>` per corrupted attribute, which shows what the judge can and cannot see)."""
    from sailvl.curation.base import build_step

    pairs, sources = judge_file_pairs(path, image_root, limit)
    step = build_step({"type": "judge", "model": str(model), **params})
    rejected = rejected_ids(step, [r for r, _ in pairs])
    # Corrupted captions count under `corrupted` and under their attribute.
    expand = lambda s: [s, "corrupted"] if s.startswith("corrupted:") else [s]  # noqa: E731
    totals = Counter(k for s in sources.values() for k in expand(s))
    hits = Counter(k for i in rejected for k in expand(sources[i]))
    by_source = {k: hits[k] / totals[k] for k in sorted(totals)}
    method: dict[str, Any] = {"ita_method": step.params.ita_method}
    if step.params.ita_method == "likelihood":
        method["min_alignment"] = step.min_alignment()
    return {**method, **judge_rates(pairs, rejected), "rejected_by_source": by_source}
