"""Benchmark-level scores from per-item predictions: answer matching under a policy, circular MCQ, MME,
HallusionBench, per-category accuracy; the formulas are VLMEvalKit's (see `sailvl.eval.matching`)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from sailvl.data.thinking import split_thinking, unclosed_thinking
from sailvl.errors import SailvlError
from sailvl.eval import lenient
from sailvl.eval.matching import (
    MATCHING_POLICIES,
    Match,
    OptionRule,
    TextJudge,
    YesNoRule,
    infer_option,
    match_option,
    match_yes_no,
    yes_no_in,
)
from sailvl.eval.registry import BenchmarkSpec
from sailvl.eval.scorers import (
    anls,
    ocrbench_hit,
    parse_answers,
    relaxed_accuracy,
    vqa_accuracy,
    vqa_match,
)
from sailvl.eval.tsv import OPTION_LETTERS, BenchItem

_YES_NO = {"yes", "no"}
_SHORT_ANSWER = {"vqa": vqa_accuracy, "vqa_match": vqa_match, "anls": anls, "relaxed": relaxed_accuracy}
# VLMEvalKit's MMMU evaluation turns open questions into two-option MCQs (MMMU_preproc).
_MMMU_OTHER = "Other Answers"
_MME_SUPER_CATEGORIES = {
    "perception": (
        "OCR", "artwork", "celebrity", "color", "count", "existence", "landmark", "position", "posters", "scene",
    ),
    "reasoning": ("code_reasoning", "commonsense_reasoning", "numerical_calculation", "text_translation"),
}  # fmt: skip


def row_task(item: BenchItem) -> str:
    """Task of one row of an unregistered TSV: options -> mcq, a yes/no answer -> yesno, else vqa."""
    if len(item.options) >= 2:
        return "mcq"
    if item.answer.strip().lower() in _YES_NO:
        return "yesno"
    return "vqa"


def item_scorer(spec: BenchmarkSpec, item: BenchItem) -> str:
    """Name of the per-item scorer used for `item` under `spec` (resolving "auto" per row). Short answers
    of unregistered TSVs are matched against any reference (VQA accuracy needs several references)."""
    if spec.scorer == "auto":
        task = row_task(item)
        return "vqa_match" if task == "vqa" else task
    if spec.scorer in ("mcq", "mcq_circular"):
        return "mcq"
    if spec.scorer in ("yesno", "mme", "hallusion"):
        return "yesno"
    return spec.scorer


def mcq_choices(benchmark: str, item: BenchItem) -> tuple[dict[str, str], str]:
    """(options, right letter) as VLMEvalKit's evaluation sees them. MMMU: an open question becomes
    {A: answer, B: "Other Answers"} and a non-letter answer means A. Elsewhere an answer cell holding an
    option's text (hand-made TSVs; VLMEvalKit's files hold letters) means that option's letter."""
    options, answer = dict(item.options), item.answer.strip()
    if "MMMU" in benchmark:
        if "A" not in options:
            options = {"A": answer, "B": _MMMU_OTHER}
        return options, answer if len(answer) == 1 and answer in OPTION_LETTERS else "A"
    if answer not in options:
        by_text = [k for k, v in options.items() if v.strip().lower() == answer.lower()]
        answer = by_text[0] if len(by_text) == 1 else answer
    return options, answer


@dataclass
class _Matcher:
    """Matches answers under one policy; counts answers the judge resolved and answers nothing resolved."""

    matching: str
    judge: TextJudge | None
    rng: random.Random
    judged: int = 0
    extraction_failed: int = 0
    _option_rule: OptionRule = field(init=False)
    _yes_no_rule: YesNoRule = field(init=False)

    def __post_init__(self):
        exact = self.matching == "exact"
        self._option_rule = infer_option if exact else lenient.extract_option
        self._yes_no_rule = yes_no_in if exact else lenient.extract_yes_no

    def count(self, match: Match) -> Match:
        self.judged += match.source == "judge"
        self.extraction_failed += match.source == "failed"
        return match

    def option(self, item: BenchItem, options: dict, prediction: str, use_judge: bool = True) -> Match:
        judge = self.judge if use_judge else None
        return match_option(prediction, options, item.question, judge, self.rng, self._option_rule)

    def yes_no(self, item: BenchItem, prediction: str) -> Match:
        return self.count(match_yes_no(prediction, item.question, self.judge, self._yes_no_rule))


def _score_item(
    scorer: str, spec: BenchmarkSpec, item: BenchItem, prediction: str, matcher: _Matcher
) -> tuple[float, str | None]:
    """(score in [0, 1], the option letter / "Yes" / "No" matched, None for short answers or no match)."""
    if scorer == "mcq":
        options, truth = mcq_choices(spec.name, item)
        picked = matcher.count(matcher.option(item, options, prediction)).answer
        return float(picked == truth), picked
    if scorer == "yesno":
        picked = matcher.yes_no(item, prediction).answer
        return float(picked is not None and picked.lower() == item.answer.strip().lower()), picked
    answers = parse_answers(item.answer)
    if scorer == "ocrbench":
        return ocrbench_hit(prediction, answers, item.category), None
    if scorer in _SHORT_ANSWER:
        return _SHORT_ANSWER[scorer](prediction, answers), None
    raise ValueError(f"no per-item scorer named {scorer!r}")


def _circular_group(
    spec: BenchmarkSpec, members: list[BenchItem], predictions: dict[str, str], matcher: _Matcher
) -> tuple[float, float]:
    """VLMEvalKit's circular evaluation of one question: rules on every rotation first (one wrong answer
    fails the question without asking the judge), then the judge on the unresolved rotations in order,
    stopping at the first wrong one. Returns (hit, hit of the unrotated copy)."""
    if all(isinstance(it.index, int) for it in members):
        members = sorted(members, key=lambda it: it.index)  # VLMEvalKit visits rotations by index
    rows = [(it, *mcq_choices(spec.name, it), predictions.get(str(it.index), "")) for it in members]
    matches = [matcher.option(it, options, pred, use_judge=False) for it, options, _, pred in rows]
    resolved = [m.source == "rule" for m in matches]
    hit = not any(
        ok and m.answer != truth for ok, m, (_, _, truth, _) in zip(resolved, matches, rows, strict=True)
    )
    if hit and not all(resolved):
        if matcher.judge is None:
            hit = False
        for i, (it, options, truth, pred) in enumerate(rows):
            if not hit:
                break
            if not resolved[i]:
                matches[i] = matcher.option(it, options, pred)
                hit = matches[i].answer == truth
    for match in matches:
        matcher.count(match)
    first = next((i for i, it in enumerate(members) if it.index == it.group), 0)
    return float(hit), float(matches[first].answer == rows[first][2])


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
    """MME (VLMEvalKit's MME_rating): per category acc + acc+ in percent, acc+ counting an image right
    when its first two questions are both right; perception and reasoning sums (max 2000 and 800); the
    total over categories (max 200 each) is normalised to 0-100 for averages."""
    by_cat: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for item, score in zip(items, scores, strict=True):
        by_cat[item.category][item.image_key].append(score)
    category_scores = {}
    for cat, images in by_cat.items():
        acc = _mean([s for answers in images.values() for s in answers])
        acc_plus = _mean([float(all(answers[:2])) for answers in images.values()])
        category_scores[cat] = 100.0 * acc + 100.0 * acc_plus
    total = sum(category_scores.values())
    result = {
        "score": 100.0 * total / (200.0 * len(category_scores)) if category_scores else 0.0,
        "mme_total": round(total, 4),
        "mme_category_scores": {k: round(v, 4) for k, v in sorted(category_scores.items())},
    }
    for name, members in _MME_SUPER_CATEGORIES.items():
        result[f"mme_{name}"] = round(sum(category_scores.get(c, 0.0) for c in members), 4)
    return result


def _hallusion_ids(item: BenchItem) -> tuple[str, str, str] | None:
    """(set, figure, question) ids: from the index as VLMEvalKit reads it (fields 3-5 of an
    underscore-separated index), else from set_id/figure_id/question_id columns."""
    if isinstance(item.index, str) and len(parts := item.index.split("_")) >= 6:
        return parts[3], parts[4], parts[5]
    if all(k in item.extra for k in ("set_id", "figure_id", "question_id")):
        return item.extra["set_id"], item.extra["figure_id"], item.extra["question_id"]
    return None


def _hallusion(items: list[BenchItem], scores: list[float]) -> dict:
    """HallusionBench (VLMEvalKit's Hallusion_rating): mean of aAcc (per question), fAcc (per figure:
    all its questions right) and qAcc (per question: right on every figure), grouped within
    l2-category; aAcc alone when the rows carry no set/figure/question ids."""
    a_acc = _mean(scores)
    ids = [_hallusion_ids(it) for it in items]
    if not items or any(i is None for i in ids):
        return {"score": 100.0 * a_acc, "aAcc": round(100.0 * a_acc, 4)}
    l2 = [it.extra.get("l2-category", "") for it in items]
    f_acc = _grouped_all_right([(c, s, f) for c, (s, f, _) in zip(l2, ids, strict=True)], scores)
    q_acc = _grouped_all_right([(c, s, q) for c, (s, _, q) in zip(l2, ids, strict=True)], scores)
    return {
        "score": 100.0 * (a_acc + f_acc + q_acc) / 3.0,
        "aAcc": round(100.0 * a_acc, 4),
        "fAcc": round(100.0 * f_acc, 4),
        "qAcc": round(100.0 * q_acc, 4),
    }


def _pope(items: list[BenchItem], scores: list[float], picks: list[str | None]) -> dict:
    """POPE (VLMEvalKit's POPE_rating): F1 of answering "Yes", in percent, is the headline score; a row
    counts once per comma-separated category (split); for F1 an unmatched answer counts as "No"."""
    rows = [
        (it.answer.strip().lower() == "yes", (picked or "").lower() == "yes", score)
        for it, score, picked in zip(items, scores, picks, strict=True)
        for _ in it.category.split(",")
    ]
    tp = sum(truth and guess for truth, guess, _ in rows)
    fp = sum(guess and not truth for truth, guess, _ in rows)
    fn = sum(truth and not guess for truth, guess, _ in rows)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "score": 100.0 * f1,
        "pope_f1": round(100.0 * f1, 4),
        "pope_accuracy": round(100.0 * _mean([score for _, _, score in rows]), 4),
        "pope_precision": round(100.0 * precision, 4),
        "pope_recall": round(100.0 * recall, 4),
    }


def strip_thinking(items: list[BenchItem], predictions: dict[str, str]) -> tuple[dict[str, str], dict]:
    """The answers to `items` with any `<think>...</think>` trace split off (`split_thinking`, VLMEvalKit's
    SPLIT_THINK rule), and how many had one: `answers_with_think` (a closed trace, removed) and
    `answers_unclosed_think` (a trace never closed, so no answer: scored as it stands, as VLMEvalKit does)."""
    answers, closed, unclosed = {}, 0, 0
    for item in items:
        key = str(item.index)
        if key not in predictions:
            continue
        answers[key], trace = split_thinking(predictions[key])
        closed += trace is not None
        unclosed += unclosed_thinking(predictions[key])
    return answers, {"answers_with_think": closed, "answers_unclosed_think": unclosed}


def score_benchmark(
    spec: BenchmarkSpec,
    items: list[BenchItem],
    predictions: dict[str, str],
    matching: str = "exact",
    judge: TextJudge | None = None,
    seed: int = 0,
) -> dict:
    """Score a benchmark. `items` are the rows asked (circular copies included for mcq_circular),
    `predictions` maps str(index) to the model's answer; a missing prediction counts as wrong.
    `matching` is "exact" (VLMEvalKit's policy) or "lenient" (sailvl's extraction of MCQ and yes/no answers;
    short-answer scorers are the same under both); a `<think>` trace is split off every answer first
    (`strip_thinking`, whose counts the result carries); `judge` maps MCQ and yes/no answers the
    rules cannot read, as VLMEvalKit's judge does; `seed` seeds its random pick when the judge fails too.

    Returns a JSON-ready dict: `score` (0-100, the number that enters averages), `n`, `chance`
    (0-100, counting free-form rows as 0), `per_category` ({accuracy, n, chance}), `matching`, `judged`
    (answers the judge resolved), `extraction_failed` (answers neither rules nor judge resolved) and
    benchmark-specific metrics."""
    if matching not in MATCHING_POLICIES:
        raise SailvlError(f"matching {matching!r} is not one of: {', '.join(MATCHING_POLICIES)}")
    matcher = _Matcher(matching, judge, random.Random(seed))
    predictions, think_counts = strip_thinking(items, predictions)
    scorers = [item_scorer(spec, it) for it in items]
    chances = [item_chance(s, it) for s, it in zip(scorers, items, strict=True)]
    result: dict = {"benchmark": spec.name, "task": spec.task, "scorer": spec.scorer, "matching": matching}
    result.update(think_counts)
    scores: list[float] = []
    if spec.scorer == "mcq_circular":
        groups: dict = defaultdict(list)
        for it, c in zip(items, chances, strict=True):
            groups[it.group].append((it, c))
        rows, originals = [], []
        for members in groups.values():
            hit, original_hit = _circular_group(spec, [it for it, _ in members], predictions, matcher)
            # Guessing passes a circular group only by guessing right under every rotation.
            chance = 1.0
            for _, c in members:
                chance *= c if c is not None else 0.0
            rows.append((members[0][0].category, hit, chance))
            originals.append(original_hit)
        result["n_questions"] = len(groups)
        result["vanilla_accuracy"] = round(100.0 * _mean(originals), 4)
    else:
        outcomes = [
            _score_item(s, spec, it, predictions.get(str(it.index), ""), matcher)
            for s, it in zip(scorers, items, strict=True)
        ]
        scores = [score for score, _ in outcomes]
        rows = list(zip([it.category for it in items], scores, chances, strict=True))
    result["n"] = len(items)
    result["score"] = 100.0 * _mean([s for _, s, _ in rows])
    result["chance"] = round(100.0 * _mean([c if c is not None else 0.0 for _, _, c in rows]), 4)
    result["per_category"] = _per_category(rows)
    result["judged"] = matcher.judged
    result["extraction_failed"] = matcher.extraction_failed
    if spec.scorer == "mme":
        result.update(_mme(items, scores))
    elif spec.scorer == "hallusion":
        result.update(_hallusion(items, scores))
    elif spec.scorer == "ocrbench":
        result["ocrbench_score"] = int(sum(scores))
    elif spec.scorer == "yesno" and "POPE" in spec.name:
        result.update(_pope(items, scores, [picked for _, picked in outcomes]))
    result["score"] = round(result["score"], 4)
    return result
