"""Scorer unit tests with hand-made predictions: MCQ matching (exact and lenient), judge fallback, circular
MMBench, yes/no, MME, VQA, ANLS, OCR. Parity with VLMEvalKit itself is tested in test_eval_vlmeval_parity.py."""

from __future__ import annotations

import random

import pytest

from sailvl.errors import SailvlError
from sailvl.eval.aggregate import score_benchmark
from sailvl.eval.lenient import extract_option, extract_yes_no
from sailvl.eval.matching import infer_option, match_option, yes_no_in
from sailvl.eval.registry import BENCHMARKS, auto_spec
from sailvl.eval.scorers import (
    anls,
    normalize_vqa,
    ocrbench_hit,
    parse_answers,
    relaxed_accuracy,
    vqa_accuracy,
    vqa_match,
)
from sailvl.eval.tsv import BenchItem, circular_items

OPTIONS = {"A": "blue", "B": "red", "C": "dark red", "D": "green"}


@pytest.mark.parametrize(
    "prediction, expected",
    [
        ("B", "B"),
        ("The answer is (B).", "B"),
        ("B. red", "B"),
        ("(D)", "D"),
        ("red", "B"),  # option text only
        ("green", "D"),
        ("**C**", "C"),
        ("Z", "Z"),  # VLMEvalKit's refusal letter
        ("Cannot determine the answer", "Z"),
        # The disagreements: VLMEvalKit reads none of these.
        ("Neither A nor B.", None),
        ("A or B", None),
        ("b", None),  # lowercase letters are not options
        ("<answer>C</answer>", None),
        ("It is dark red.", None),  # "red" is inside "dark red": two options match
        ("B is right because the picture shows a red car parked on the street.", None),  # letter too early
        ("", None),
        ("purple", None),
    ],
)
def test_exact_option_matching(prediction, expected):
    assert infer_option(prediction, OPTIONS) == expected


@pytest.mark.parametrize(
    "prediction, expected",
    [
        ("b", "B"),
        ("c.", "C"),
        ("answer: d", "D"),
        ("Red.", "B"),
        ("It is dark red.", "C"),  # the longer option text wins
        ("A", "A"),
        ("A red car is parked.", "B"),  # "A" is an article here, the text names option B
        ("I don't know", None),
        ("B or C", None),
        ("blue and green", None),
    ],
)
def test_lenient_option_extraction(prediction, expected):
    assert extract_option(prediction, OPTIONS) == expected


def test_judge_fallback_retries_then_draws_a_seeded_random_option():
    prompts = []

    def judge(prompt):
        prompts.append(prompt)
        return "Failed to obtain answer via API" if len(prompts) == 1 else "The closest option is C"

    match = match_option("something crimson", OPTIONS, "Which colour", judge)
    assert (match.answer, match.source, len(prompts)) == ("C", "judge", 2)
    assert "Question: Which colour?\nOptions: There are several options: \nA. blue\n" in prompts[0]
    assert match_option("something crimson", OPTIONS).answer == "Z"  # no judge: exact matching fails
    picks = {match_option("x", OPTIONS, "q", lambda p: "no idea", random.Random(s)).answer for s in range(40)}
    assert picks == {"A", "B", "C", "D", "Z"}
    again = [match_option("x", OPTIONS, "q", lambda p: "?", random.Random(5)).answer for _ in range(3)]
    assert len(set(again)) == 1


def test_score_benchmark_counts_policy_judge_and_failures():
    spec = BENCHMARKS["AI2D_TEST"]
    items = [_mcq(i, "B") for i in range(4)]
    preds = {"0": "B", "1": "b", "2": "The answer is: red", "3": "crimson"}
    exact = score_benchmark(spec, items, preds)
    assert (exact["matching"], exact["score"], exact["judged"], exact["extraction_failed"]) == (
        "exact",
        50.0,
        0,
        2,
    )
    lenient = score_benchmark(spec, items, preds, matching="lenient")
    assert (lenient["matching"], lenient["score"], lenient["extraction_failed"]) == ("lenient", 75.0, 1)
    judged = score_benchmark(spec, items, preds, judge=lambda prompt: "B")
    assert (judged["score"], judged["judged"], judged["extraction_failed"]) == (100.0, 2, 0)
    with pytest.raises(SailvlError, match="matching 'loose'"):
        score_benchmark(spec, items, preds, matching="loose")


def _mcq(index, answer, category="cat"):
    return BenchItem(
        index=index, question="Which colour?", answer=answer, options=dict(OPTIONS), category=category
    )


def test_circular_rotations_remap_answer_and_index():
    items = list(circular_items([_mcq(3, "B")]))
    assert [it.index for it in items] == [3, 1_000_003, 2_000_003, 3_000_003]
    for item in items:
        assert item.options[item.answer] == "red"  # answer letter follows the option text
        assert item.group == 3
    # Files that already contain circular copies are passed through unchanged.
    assert len(list(circular_items(items))) == 4


def test_circular_counts_question_only_if_right_under_every_rotation():
    spec = BENCHMARKS["MMBench_DEV_EN_V11"]
    items = list(circular_items([_mcq(1, "B", "x"), _mcq(2, "A", "y")]))
    # Question 1: always answers the option text "red" -> right under every rotation.
    # Question 2: always answers letter "A" -> right only in the unrotated copy.
    preds = {}
    for it in items:
        preds[str(it.index)] = "red" if it.group == 1 else "A"
    result = score_benchmark(spec, items, preds)
    assert result["n_questions"] == 2
    assert result["score"] == pytest.approx(50.0)
    assert result["vanilla_accuracy"] == pytest.approx(100.0)
    assert result["per_category"]["x"]["accuracy"] == 100.0
    assert result["per_category"]["y"]["accuracy"] == 0.0
    # Guessing passes a 4-option circular group with probability (1/4)^4.
    assert result["per_category"]["x"]["chance"] == pytest.approx(100 * 0.25**4, abs=1e-3)


@pytest.mark.parametrize(
    "prediction, exact, lenient",
    [("Yes", "Yes", "Yes"), ("no.", "No", "No"), ("Yes, there is a dog.", "Yes", "Yes"), ("maybe", None, None),
     ("yes and no", None, None), ("", None, None), ("**Yes**", None, "Yes"), ("yes:", None, "Yes")],
)  # fmt: skip
def test_yes_no_extraction(prediction, exact, lenient):
    assert yes_no_in(prediction) == exact
    assert extract_yes_no(prediction) == lenient


def test_mme_score_acc_plus_acc_plus():
    spec = BENCHMARKS["MME"]
    items = [
        BenchItem(0, "q", "Yes", category="color", image_key="img0"),
        BenchItem(1, "q", "No", category="color", image_key="img0"),
        BenchItem(2, "q", "Yes", category="color", image_key="img1"),
        BenchItem(3, "q", "No", category="color", image_key="img1"),
    ]
    preds = {"0": "Yes", "1": "No", "2": "Yes", "3": "Yes"}  # image 0 both right, image 1 one wrong
    result = score_benchmark(spec, items, preds)
    # acc = 75, acc+ = 50 -> 125 of 200 for the category; normalised to 62.5.
    assert result["mme_category_scores"]["color"] == pytest.approx(125.0)
    assert result["mme_total"] == pytest.approx(125.0)
    assert result["score"] == pytest.approx(62.5)
    assert result["per_category"]["color"]["chance"] == 50.0


def test_vqa_normalisation_and_accuracy():
    assert normalize_vqa("Two dogs.") == "2 dogs"
    assert normalize_vqa("The Cat") == "cat"
    assert normalize_vqa("1,000") == "1000"
    assert normalize_vqa("dont") == "don't"
    assert normalize_vqa("1,000 dogs.") == "1000 dogs"
    # VLMEvalKit's VQA accuracy compares with the *other* references: one reference always scores 0.
    assert vqa_accuracy("Two", ["2"]) == 0.0
    assert vqa_match("Two", ["2"]) == 1.0  # unregistered TSVs use plain matching
    assert vqa_match("three", ["2"]) == 0.0
    refs = ["cat"] * 2 + ["dog"] * 8
    # leave-one-out: 2 subsets hold one "cat" (1/3), 8 subsets hold two "cat"s (2/3)
    assert vqa_accuracy("cat", refs) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert vqa_accuracy("dog", refs) == pytest.approx(1.0)


def test_parse_answers_list_cell():
    assert parse_answers("['a', 'b']") == ["a", "b"]
    assert parse_answers("plain") == ["plain"]
    assert parse_answers("[broken") == ["[broken"]


def test_anls():
    assert anls("Hello", ["hello"]) == 1.0
    assert anls("hellp", ["hello"]) == pytest.approx(0.8)
    assert anls("xyz", ["hello"]) == 0.0  # distance over the 0.5 threshold
    assert anls("hellp", ["nope", "hello"]) == pytest.approx(0.8)  # best reference


def test_ocrbench_containment():
    assert ocrbench_hit("The sign says STOP here", ["stop"]) == 1.0
    assert ocrbench_hit("GO", ["stop"]) == 0.0
    hme = "Handwritten Mathematical Expression Recognition"
    assert ocrbench_hit("x ^ { 2 } + 1", ["x^{2}+1"], hme) == 1.0
    assert ocrbench_hit("x ^ { 2 } + 1", ["x^{2}+1"], "Regular Text Recognition") == 0.0


def test_relaxed_accuracy():
    assert relaxed_accuracy("104", ["100"]) == 1.0
    assert relaxed_accuracy("106", ["100"]) == 0.0
    assert relaxed_accuracy("12%", ["0.12"]) == 1.0
    assert relaxed_accuracy("Paris", ["paris"]) == 1.0
    assert relaxed_accuracy("Paris.", ["paris"]) == 0.0  # non-numbers must match exactly
    assert relaxed_accuracy("1,000", ["1000"]) == 0.0  # float() does not read thousands separators
    assert relaxed_accuracy("0", ["0"]) == 1.0
    assert relaxed_accuracy("London", ["paris"]) == 0.0


def test_auto_benchmark_per_row_tasks_and_chance():
    spec = auto_spec("synthetic")
    items = [
        BenchItem(0, "colour?", "B", options={"A": "red", "B": "blue"}, category="mcq"),
        BenchItem(1, "colour?", "A", options={"A": "red", "B": "blue"}, category="mcq"),
        BenchItem(2, "dog?", "yes", category="yesno"),
        BenchItem(3, "dog?", "no", category="yesno"),
        BenchItem(4, "count?", "3", category="vqa"),
    ]
    preds = {"0": "blue", "1": "B", "2": "Yes", "3": "Yes", "4": "three"}
    result = score_benchmark(spec, items, preds)
    cats = result["per_category"]
    assert cats["mcq"] == {"accuracy": 50.0, "n": 2, "chance": 50.0}
    assert cats["yesno"] == {"accuracy": 50.0, "n": 2, "chance": 50.0}
    assert cats["vqa"] == {"accuracy": 100.0, "n": 1, "chance": None}
    assert result["score"] == pytest.approx(60.0)
    assert result["chance"] == pytest.approx(40.0)  # free-form rows count as 0 chance


def test_hallusion_groups():
    spec = BENCHMARKS["HallusionBench"]

    def item(i, fig, q, ans):
        extra = {"set_id": "0", "figure_id": fig, "question_id": q, "l2-category": "x"}
        return BenchItem(i, "q", ans, category="VD", extra=extra)

    items = [
        item(0, "0", "0", "Yes"),
        item(1, "0", "1", "No"),
        item(2, "1", "0", "No"),
        item(3, "1", "1", "No"),
    ]
    preds = {"0": "Yes", "1": "No", "2": "No", "3": "Yes"}
    result = score_benchmark(spec, items, preds)
    assert result["aAcc"] == 75.0
    assert result["fAcc"] == 50.0  # figure 0 all right, figure 1 not
    assert result["qAcc"] == 50.0  # question 0 right on both figures, question 1 not
    assert result["score"] == pytest.approx((75 + 50 + 50) / 3)


def test_yes_no_judge_resolves_what_the_rules_cannot():
    spec = BENCHMARKS["POPE"]
    items = [
        BenchItem(i, "Is there a dog", ans, category="random") for i, ans in enumerate(["Yes", "No", "Yes"])
    ]
    preds = {"0": "Yes.", "1": "**No**", "2": "I believe so"}
    plain = score_benchmark(spec, items, preds)
    assert (plain["judged"], plain["extraction_failed"], plain["pope_accuracy"]) == (
        0,
        2,
        pytest.approx(100 / 3, abs=1e-3),
    )
    prompts = []

    def judge(prompt):
        prompts.append(prompt)
        return "No" if "**No**" in prompt else ("Unknown" if len(prompts) < 4 else "Yes")

    judged = score_benchmark(spec, items, preds, judge=judge)
    assert (judged["judged"], judged["extraction_failed"], judged["pope_accuracy"]) == (2, 0, 100.0)
    assert judged["score"] == 100.0  # F1 of "Yes"
    assert len(prompts) == 4 and prompts[-1].endswith(
        "Question: Is there a dog?\nAnswer: I believe so\nYour output: "
    )
