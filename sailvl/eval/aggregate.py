"""Benchmark-level scores from per-item predictions: circular MCQ, MME, HallusionBench, per-category accuracy."""

from __future__ import annotations

from collections import defaultdict

from sailvl.eval.registry import BenchmarkSpec
from sailvl.eval.scorers import (
    anls,
    ocrbench_hit,
    parse_answers,
    relaxed_accuracy,
    score_mcq,
    score_yes_no,
    vqa_accuracy,
)
from sailvl.eval.tsv import BenchItem

_YES_NO = {"yes", "no"}


def row_task(item: BenchItem) -> str:
    """Task of one row of an unregistered TSV: options -> mcq, a yes/no answer -> yesno, else vqa."""
    if len(item.options) >= 2:
        return "mcq"
    if item.answer.strip().lower() in _YES_NO:
        return "yesno"
    return "vqa"


def item_scorer(spec: BenchmarkSpec, item: BenchItem) -> str:
    """Name of the per-item scorer used for `item` under `spec` (resolving "auto" per row)."""
    if spec.scorer == "auto":
        return row_task(item)
    if spec.scorer in ("mcq", "mcq_circular"):
        return "mcq"
    if spec.scorer in ("yesno", "mme", "hallusion"):
        return "yesno"
    return spec.scorer


def score_item(scorer: str, item: BenchItem, prediction: str) -> float:
    """Score in [0, 1] of one prediction with the named per-item scorer."""
    if scorer == "mcq":
        return score_mcq(prediction, item.options, item.answer)
    if scorer == "yesno":
        return score_yes_no(prediction, item.answer)
    answers = parse_answers(item.answer)
    if scorer == "vqa":
        return vqa_accuracy(prediction, answers)
    if scorer == "anls":
        return anls(prediction, answers)
    if scorer == "ocrbench":
        return ocrbench_hit(prediction, answers, item.category)
    if scorer == "relaxed":
        return relaxed_accuracy(prediction, answers)
    raise ValueError(f"no per-item scorer named {scorer!r}")


def item_chance(scorer: str, item: BenchItem) -> float | None:
    """Probability of a right answer by guessing: 1/#options for MCQ, 0.5 for yes/no, else None."""
    if scorer == "mcq":
        return 1.0 / len(item.options) if item.options else None
    if scorer == "yesno":
        return 0.5
    return None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _grouped_all_right(keys: list, scores: list[float]) -> float:
    groups: dict = defaultdict(list)
    for key, score in zip(keys, scores, strict=True):
        groups[key].append(score)
    return _mean([float(all(s == 1.0 for s in group)) for group in groups.values()])


def _per_category(rows: list[tuple[str, float, float | None]]) -> dict[str, dict]:
    """rows of (category, score in [0,1], chance or None) -> {category: accuracy %, n, chance %}."""
    by_cat: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    for category, score, chance in rows:
        by_cat[category or "all"].append((score, chance))
    out = {}
    for category in sorted(by_cat):
        entries = by_cat[category]
        chances = [c for _, c in entries if c is not None]
        out[category] = {
            "accuracy": round(100.0 * _mean([s for s, _ in entries]), 4),
            "n": len(entries),
            "chance": round(100.0 * _mean(chances), 4) if len(chances) == len(entries) else None,
        }
    return out


def _mme(items: list[BenchItem], scores: list[float]) -> dict:
    """MME: per category acc + acc+ (both questions about an image right), each in percent; the
    total over categories (max 200 each, 2800 on full MME) is normalised to 0-100 for averages."""
    by_cat: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for item, score in zip(items, scores, strict=True):
        by_cat[item.category][0].append(item.image_key)
        by_cat[item.category][1].append(score)
    category_scores = {
        cat: 100.0 * _mean(s) + 100.0 * _grouped_all_right(keys, s) for cat, (keys, s) in by_cat.items()
    }
    total = sum(category_scores.values())
    return {
        "score": 100.0 * total / (200.0 * len(category_scores)) if category_scores else 0.0,
        "mme_total": round(total, 4),
        "mme_category_scores": {k: round(v, 4) for k, v in sorted(category_scores.items())},
    }


def _hallusion(items: list[BenchItem], scores: list[float]) -> dict:
    """HallusionBench: mean of aAcc (per question), fAcc (per figure) and qAcc (per question
    across figures) when the grouping columns are present; aAcc alone otherwise."""
    a_acc = _mean(scores)
    extra = items[0].extra if items else {}
    if not all(k in extra for k in ("set_id", "figure_id", "question_id")):
        return {"score": 100.0 * a_acc, "aAcc": round(100.0 * a_acc, 4)}
    f_keys = [
        (it.category, it.extra.get("l2-category"), it.extra["set_id"], it.extra["figure_id"]) for it in items
    ]
    q_keys = [
        (it.category, it.extra.get("l2-category"), it.extra["set_id"], it.extra["question_id"])
        for it in items
    ]
    f_acc, q_acc = _grouped_all_right(f_keys, scores), _grouped_all_right(q_keys, scores)
    return {
        "score": 100.0 * (a_acc + f_acc + q_acc) / 3.0,
        "aAcc": round(100.0 * a_acc, 4),
        "fAcc": round(100.0 * f_acc, 4),
        "qAcc": round(100.0 * q_acc, 4),
    }


def score_benchmark(
    spec: BenchmarkSpec,
    items: list[BenchItem],
    predictions: dict[str, str],
    matching: str = "exact",
    judge=None,
    seed: int = 0,
) -> dict:
    """Score a benchmark. `items` are the rows asked (circular copies included for mcq_circular),
    `predictions` maps str(index) to the model's answer; a missing prediction counts as wrong.

    Returns a JSON-ready dict: `score` (0-100, the number that enters averages), `n`, `chance`
    (0-100, counting free-form rows as 0), `per_category` ({accuracy, n, chance}) and extra metrics.
    `matching`, `judge` and `seed` are accepted for the agreed interface (A1 implements them)."""
    scorers = [item_scorer(spec, it) for it in items]
    scores = [
        score_item(s, it, predictions.get(str(it.index), "")) for s, it in zip(scorers, items, strict=True)
    ]
    chances = [item_chance(s, it) for s, it in zip(scorers, items, strict=True)]
    result: dict = {"benchmark": spec.name, "task": spec.task, "scorer": spec.scorer}
    if spec.scorer == "mcq_circular":
        groups: dict = defaultdict(list)
        for it, s, c in zip(items, scores, chances, strict=True):
            groups[it.group].append((it, s, c))
        rows = []
        for members in groups.values():
            # Guessing passes a circular group only by guessing right under every rotation.
            chance = 1.0
            for _, _, c in members:
                chance *= c if c is not None else 0.0
            rows.append((members[0][0].category, float(all(s == 1.0 for _, s, _ in members)), chance))
        result["n_questions"] = len(groups)
        originals = [s for it, s in zip(items, scores, strict=True) if it.group == it.index]
        result["vanilla_accuracy"] = round(100.0 * _mean(originals), 4)
    else:
        rows = list(zip([it.category for it in items], scores, chances, strict=True))
    result["n"] = len(items)
    result["score"] = 100.0 * _mean([s for _, s, _ in rows])
    result["chance"] = round(100.0 * _mean([c if c is not None else 0.0 for _, _, c in rows]), 4)
    result["per_category"] = _per_category(rows)
    if spec.scorer == "mme":
        result.update(_mme(items, scores))
    elif spec.scorer == "hallusion":
        result.update(_hallusion(items, scores))
    elif spec.scorer == "ocrbench":
        result["ocrbench_score"] = int(sum(scores))
    result["score"] = round(result["score"], 4)
    return result
