"""Parity with VLMEvalKit: sailvl's exact matching and scorers against VLMEvalKit's own functions
(tests/_vlmeval.py) on a corpus of realistic model outputs (tests/assets/vlmeval_parity_corpus.jsonl,
written by tests/assets/build_parity_corpus.py). Any disagreement is listed case by case."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from _vlmeval import installed_version, load_vlmeval

from sailvl.eval.aggregate import score_benchmark
from sailvl.eval.matching import (
    VLMEVALKIT_VERSION,
    infer_option,
    match_option,
    match_yes_no,
    mcq_judge_prompt,
    yes_no_in,
    yes_no_judge_prompt,
)
from sailvl.eval.registry import BENCHMARKS, BenchmarkSpec
from sailvl.eval.scorers import anls, normalize_vqa, ocrbench_hit, relaxed_accuracy, vqa_accuracy
from sailvl.eval.tsv import BenchItem, circular_items

CORPUS = Path(__file__).parent / "assets" / "vlmeval_parity_corpus.jsonl"


@pytest.fixture(scope="module")
def vlm(monkeypatch_module):
    return load_vlmeval()


@pytest.fixture(scope="module")
def monkeypatch_module():
    # VLMEvalKit's can_infer_option adds a rule when VERBOSE is set; its default run has it unset.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("VERBOSE", raising=False)
        yield mp


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict]]:
    cases: dict[str, list[dict]] = {}
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        cases.setdefault(case["kind"], []).append(case)
    return cases


def _disagreements(cases, ours, theirs) -> list[str]:
    return [
        f"{c['prediction']!r}: sailvl {a!r} vs VLMEvalKit {b!r}"
        for c, a, b in zip(cases, ours, theirs, strict=True)
        if a != b
    ]


def test_pinned_vlmevalkit_version_is_the_one_installed():
    assert installed_version() == VLMEVALKIT_VERSION


def test_corpus_covers_every_scorer_with_hundreds_of_cases(corpus):
    assert {k: len(v) >= 50 for k, v in corpus.items()} == dict.fromkeys(
        ("mcq", "yesno", "vqa", "anls", "relaxed", "ocrbench"), True
    )
    assert sum(map(len, corpus.values())) >= 1000


def _outcome(picked: str | None, answer: str) -> str:
    return "none" if picked is None else "Z" if picked == "Z" else "right" if picked == answer else "other"


def test_mcq_option_inference_matches_can_infer(vlm, corpus):
    cases = corpus["mcq"]
    ours = [infer_option(c["prediction"], c["options"]) for c in cases]
    theirs = [vlm.matching_util.can_infer(c["prediction"], dict(c["options"])) or None for c in cases]
    assert _disagreements(cases, ours, theirs) == []
    # The corpus exercises every outcome: right letter, another letter, refusal Z and no match.
    outcomes = {_outcome(o, c["answer"]) for c, o in zip(cases, ours, strict=True)}
    assert outcomes == {"right", "other", "Z", "none"}


def _mcq_row(case) -> pd.Series:
    return pd.Series({"question": case["question"], "prediction": case["prediction"], **case["options"]})


class ScriptedJudge:
    """Replies from a fixed script, in order; records the prompts. Callable (a TextJudge) and `.generate` (VLMEvalKit)."""

    SCRIPTS = [["B"], ["I think the closest is C."], ["Failed to obtain answer via API", "A"],
               ["no idea", "still no idea", "D"], ["nothing", "nothing", "nothing"], ["Z"]]  # fmt: skip

    def __init__(self, script):
        self.replies, self.prompts = list(script), []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.replies.pop(0) if self.replies else "nothing"

    def generate(self, prompt, **kwargs):
        return self(prompt)


def test_mcq_extraction_and_judge_fallback_match_extract_answer_from_item(vlm, corpus):
    mc, rows = vlm.multiple_choice, corpus["mcq"]
    bad = []
    for i, case in enumerate(rows):
        ours = match_option(case["prediction"], case["options"], case["question"])
        theirs = mc.extract_answer_from_item(None, _mcq_row(case))
        if ours.answer != theirs["opt"]:
            bad.append((case["prediction"], ours, theirs))
        if ours.source == "rule":
            continue
        # Unmatched answers: same judge prompt, same retries, same reading of replies, same random pick.
        script = ScriptedJudge.SCRIPTS[i % len(ScriptedJudge.SCRIPTS)]
        our_judge, their_judge = ScriptedJudge(script), ScriptedJudge(script)
        ours = match_option(
            case["prediction"], case["options"], case["question"], our_judge, random.Random(i)
        )
        random.seed(i)
        theirs = mc.extract_answer_from_item(their_judge, _mcq_row(case))
        if (ours.answer, our_judge.prompts) != (theirs["opt"], their_judge.prompts):
            bad.append(
                (case["prediction"], ours, theirs["opt"], len(our_judge.prompts), len(their_judge.prompts))
            )
    assert bad == []
    assert mcq_judge_prompt("Q", {"A": "x"}, "p") == mc.build_prompt(
        "Q", "There are several options: \nA. x\n", "p"
    )


def test_yes_no_extraction_and_judge_match_vlmevalkit(vlm, corpus):
    cases = corpus["yesno"]
    ours = [yes_no_in(c["prediction"]) or "Unknown" for c in cases]
    theirs = [vlm.yorn.YOrN_Extraction(c["prediction"]) for c in cases]
    assert _disagreements(cases, ours, theirs) == []
    assert {"Yes", "No", "Unknown"} == set(ours)
    for i, case in enumerate(c for c in cases if yes_no_in(c["prediction"]) is None):
        script = [["maybe", "Yes"], ["unclear"] * 5, ["No."]][i % 3]
        our_judge, their_judge = ScriptedJudge(script), ScriptedJudge(script)
        ours_match = match_yes_no(case["prediction"], case["question"], our_judge)
        line = pd.Series({"question": case["question"], "prediction": case["prediction"]})
        assert (ours_match.answer or "Unknown", our_judge.prompts) == (
            vlm.yorn.YOrN_auxeval(their_judge, line),
            their_judge.prompts,
        ), case
    assert yes_no_judge_prompt("Q", "p") == vlm.yorn.YOrN_match_prompt({"question": "Q", "prediction": "p"})


def _vlmeval_short_answer(vlm, case, method, dataset):
    line = pd.Series({"answer": repr(case["answers"]), "prediction": case["prediction"]})
    return float(vlm.vqa_eval.hit_calculate([vlm.vqa_eval.process_line(line, method=method)], dataset)[0])


def test_vqa_normalisation_and_accuracy_match_textvqa_scoring(vlm, corpus):
    cases = corpus["vqa"]
    texts = [c["prediction"] for c in cases] + [a for c in cases for a in c["answers"]]
    assert [normalize_vqa(t) for t in texts] == [vlm.vqa_eval.process_answer(t) for t in texts]
    ours = [vqa_accuracy(c["prediction"], c["answers"]) for c in cases]
    theirs = [_vlmeval_short_answer(vlm, c, "vqa_score", "TextVQA_VAL") for c in cases]
    assert _disagreements(cases, ours, theirs) == []
    assert len(set(ours)) >= 4  # full credit, partial credit (1/3, 2/3, ...) and zero all occur


def test_anls_matches_docvqa_scoring(vlm, corpus):
    cases = corpus["anls"]
    ours = [anls(c["prediction"], c["answers"]) for c in cases]
    theirs = [_vlmeval_short_answer(vlm, c, "anls", "DocVQA_VAL") for c in cases]
    assert _disagreements(cases, ours, theirs) == []
    assert 0.0 in ours and 1.0 in ours and any(0.5 <= s < 1.0 for s in ours)


def test_relaxed_accuracy_matches_chartqa_scoring(vlm, corpus):
    cases = corpus["relaxed"]
    ours = [relaxed_accuracy(c["prediction"], c["answers"]) for c in cases]
    theirs = [_vlmeval_short_answer(vlm, c, "relaxed_accuracy", "ChartQA_TEST") for c in cases]
    assert _disagreements(cases, ours, theirs) == []
    assert set(ours) == {0.0, 1.0}


def test_ocrbench_matches_ocrbench_eval(vlm, corpus):
    cases = corpus["ocrbench"]
    ours = [ocrbench_hit(c["prediction"], c["answers"], c["category"]) for c in cases]
    theirs = []
    for i, case in enumerate(cases):
        row = {
            "prediction": case["prediction"],
            "answer": repr(case["answers"]),
            "category": case["category"],
        }
        frame = pd.DataFrame([row])
        vlm.store.dump(frame, f"ocr{i}")
        vlm.ocrbench.OCRBench_eval(f"ocr{i}")  # writes its score dict next to the input
        theirs.append(float(vlm.store.load(f"ocr{i}_score")["Final Score"]))
    assert _disagreements(cases, ours, theirs) == []
    assert set(ours) == {0.0, 1.0}


def _circular_benchmark(corpus, n_questions=60):
    """MMBench-style questions with circular copies; each rotation answered by a corpus output rewritten
    for that rotation's letters, so groups pass, fail on a wrong letter, or stay unresolved."""
    rng = random.Random(7)
    four = [c for c in corpus["mcq"] if len(c["options"]) == 4 and "Failed to obtain" not in c["prediction"]]
    originals, predictions = [], {}
    for q in range(n_questions):
        case = four[rng.randrange(len(four))]
        originals.append(
            BenchItem(q, case["question"], case["answer"], dict(case["options"]), category=f"g{q}")
        )
    items = list(circular_items(originals))
    for it in items:
        case = four[rng.randrange(len(four))]
        right = rng.random() < 0.7
        letter = it.answer if right else rng.choice(sorted(it.options))
        predictions[str(it.index)] = rng.choice(
            [letter, f"The answer is {letter}.", it.options[letter], case["prediction"]]
        )
    return items, predictions


def _vlmeval_circular_hits(vlm, items, predictions, judge=None) -> dict[int, int]:
    rows = [{"index": it.index, "question": it.question, "answer": it.answer, "category": it.category,
             "prediction": predictions[str(it.index)], **it.options} for it in items]  # fmt: skip
    data = pd.DataFrame(rows).sort_values(by="index")
    meta = data.drop(columns=["prediction"])
    result = vlm.multiple_choice.mcq_circular_eval(
        judge, data, meta, 1, "circular_result.pkl", "MMBench_DEV_EN_V11"
    )
    return {int(i): int(h) for i, h in zip(result["index"], result["hit"], strict=True)}


@pytest.mark.parametrize("with_judge", [False, True])
def test_circular_mmbench_groups_score_the_same(vlm, corpus, with_judge):
    items, predictions = _circular_benchmark(corpus)
    spec = BENCHMARKS["MMBench_DEV_EN_V11"]
    script = ["no idea", "B"]  # the judge answers B on its second try, for every unresolved rotation
    judge = (lambda: ScriptedJudge(script * 1000)) if with_judge else (lambda: None)
    vlm.store.files.clear()
    theirs = _vlmeval_circular_hits(vlm, items, predictions, judge())
    ours = score_benchmark(spec, items, predictions, judge=judge())
    assert {int(k[1:]): round(v["accuracy"] / 100) for k, v in ours["per_category"].items()} == theirs
    assert ours["score"] == pytest.approx(100 * sum(theirs.values()) / len(theirs), abs=1e-4)
    assert 0 < sum(theirs.values()) < len(theirs)
    if with_judge:
        assert ours["judged"] > 0
    else:
        assert ours["judged"] == 0 and ours["extraction_failed"] > 0


def _yes_no_items(n_images=40, with_ids=False):
    rng = random.Random(3)
    cats = ["color", "count", "OCR", "code_reasoning", "scene"]
    items, predictions = [], {}
    for img in range(n_images):
        for q in range(2):
            index = f"VD_{cats[img % 5]}_x_{img % 7}_{img % 3}_{q}" if with_ids else img * 2 + q
            item = BenchItem(index, "Is it?", rng.choice(["Yes", "No"]), category=cats[img % len(cats)],
                             image_key=f"img{img}", extra={"l2-category": cats[(img // 2) % 5]})  # fmt: skip
            items.append(item)
            predictions[str(index)] = rng.choice(["Yes", "No", "yes.", "No, it is not.", "**Yes**", "maybe"])
    return items, predictions


def _rating_frame(items, predictions, vlm):
    rows = []
    for it in items:
        extracted = vlm.yorn.YOrN_Extraction(predictions[str(it.index)])
        rows.append({"index": it.index, "category": it.category, "l2-category": it.extra["l2-category"],
                     "image_path": it.image_key, "answer": it.answer, "extracted": extracted,
                     "score": it.answer == extracted})  # fmt: skip
    return pd.DataFrame(rows)


def test_mme_aggregation_matches_mme_rating(vlm):
    items, predictions = _yes_no_items()
    vlm.store.dump(_rating_frame(items, predictions, vlm), "mme")
    theirs = vlm.yorn.MME_rating("mme").iloc[0].to_dict()
    ours = score_benchmark(BENCHMARKS["MME"], items, predictions)
    assert ours["mme_perception"] == pytest.approx(theirs.pop("perception"))
    assert ours["mme_reasoning"] == pytest.approx(theirs.pop("reasoning"))
    assert ours["mme_category_scores"] == pytest.approx(theirs)
    assert ours["mme_total"] == pytest.approx(sum(theirs.values()))


def test_hallusion_aggregation_matches_hallusion_rating(vlm):
    items, predictions = _yes_no_items(with_ids=True)
    vlm.store.dump(_rating_frame(items, predictions, vlm), "hallusion")
    theirs = vlm.yorn.Hallusion_rating("hallusion").set_index("split").loc["Overall"]
    ours = score_benchmark(BENCHMARKS["HallusionBench"], items, predictions)
    for key in ("aAcc", "fAcc", "qAcc"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-4), key
    assert ours["score"] == pytest.approx((theirs["aAcc"] + theirs["fAcc"] + theirs["qAcc"]) / 3, abs=1e-4)


def test_mmmu_open_questions_become_two_option_mcqs(vlm):
    spec = BenchmarkSpec("MMMU_DEV_VAL", "mcq", "mcq")
    items = [BenchItem(0, "Value of x?", "42"), BenchItem(1, "Pick", "B", {"A": "cat", "B": "dog"})]
    frame = pd.DataFrame([{"index": 0, "A": float("nan"), "B": float("nan"), "answer": "42"},
                          {"index": 1, "A": "cat", "B": "dog", "answer": "B"}])  # fmt: skip
    processed = vlm.multiple_choice.MMMU_preproc(frame)
    assert list(processed["A"]) == ["42", "cat"] and list(processed["B"]) == ["Other Answers", "dog"]
    result = score_benchmark(spec, items, {"0": "x = 42", "1": "dog"})
    assert result["score"] == 100.0


def test_pope_f1_matches_pope_rating(vlm):
    items, predictions = _yes_no_items()
    splits = ["random", "popular", "adversarial", "random,popular"]
    for i, it in enumerate(items):
        it.category = splits[i % len(splits)]
    frame = _rating_frame(items, predictions, vlm)
    vlm.store.dump(frame, "pope")
    theirs = vlm.yorn.POPE_rating("pope").set_index("split").loc["Overall"]
    ours = score_benchmark(BENCHMARKS["POPE"], items, predictions)
    assert ours["score"] == pytest.approx(theirs["Overall"], abs=1e-4)
    for key in ("acc", "precision", "recall"):
        assert ours[f"pope_{'accuracy' if key == 'acc' else key}"] == pytest.approx(theirs[key], abs=1e-4), (
            key
        )
    assert (frame["extracted"] == "Unknown").any()  # unmatched answers are in the mix
