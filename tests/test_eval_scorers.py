"""Scorer unit tests with hand-made predictions: MCQ extraction, circular MMBench, yes/no, MME, VQA, ANLS, OCR."""

from __future__ import annotations

import pytest

from sailvl.eval.aggregate import score_benchmark
from sailvl.eval.registry import BENCHMARKS, auto_spec
from sailvl.eval.scorers import (
    anls,
    extract_option,
    extract_yes_no,
    normalize_vqa,
    ocrbench_hit,
    parse_answers,
    relaxed_accuracy,
    score_mcq,
    vqa_accuracy,
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
        ("b", "B"),
        ("c.", "C"),
        ("answer: d", "D"),
        ("red", "B"),  # option text only
        ("Red.", "B"),
        ("It is dark red.", "C"),  # "red" is inside "dark red": the longer option wins
        ("green", "D"),
        ("A", "A"),
        ("A red car is parked.", "B"),  # "A" is an article here, the text names option B
        ("", None),  # no answer
        ("I don't know", None),
        ("purple", None),
        ("B or C", None),  # two letters: ambiguous
        ("blue and green", None),  # two option texts: ambiguous
    ],
)
def test_extract_option(prediction, expected):
    assert extract_option(prediction, OPTIONS) == expected


def test_score_mcq_answer_as_letter_or_text():
    assert score_mcq("The answer is (B).", OPTIONS, "B") == 1.0
    assert score_mcq("The answer is (B).", OPTIONS, "C") == 0.0
    assert score_mcq("B", OPTIONS, "red") == 1.0  # answer cell holding the option text
    assert score_mcq("", OPTIONS, "B") == 0.0


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
    "prediction, expected",
    [("Yes", "yes"), ("no.", "no"), ("Yes, there is a dog.", "yes"), ("No, it is not.", "no"), ("maybe", None),
     ("yes and no", None), ("", None)],
)  # fmt: skip
def test_extract_yes_no(prediction, expected):
    assert extract_yes_no(prediction) == expected


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
    assert vqa_accuracy("Two", ["2"]) == 1.0
    assert vqa_accuracy("three", ["2"]) == 0.0
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
    assert relaxed_accuracy("Paris.", ["paris"]) == 1.0
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
