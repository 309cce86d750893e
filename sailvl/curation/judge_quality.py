"""How good a judge is, and its calibration: labelled pairs from a world's `judge.jsonl`, keep / reject
rates and per-source rejection (`sailvl curate judge-eval`), and the likelihood judge's threshold fitted on
its training pairs (`sailvl curate judge-calibrate`)."""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import Counter
from pathlib import Path
from typing import Any

from sailvl.curation.base import build_step
from sailvl.curation.judge import CALIBRATION_FILE, Judge
from sailvl.data.sample import Sample
from sailvl.errors import SailvlError


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
