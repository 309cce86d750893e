"""Judge answers as strong judge models write them (tests/assets/judge_answers.jsonl, built by hand by
build_judge_answers.py) parse to the verdict a reader takes from them; a negative verdict is never read as a
positive one; unclear answers and refusals are None."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from sailvl.curation.judge import parse_score as judge_parse_score
from sailvl.curation.judge import parse_yes_no as judge_parse_yes_no
from sailvl.curation.judge_parse import parse_score, parse_yes_no

ASSETS = Path(__file__).parent / "assets"
CORPUS = [
    json.loads(line) for line in (ASSETS / "judge_answers.jsonl").read_text(encoding="utf-8").splitlines()
]
YES_NO = [row for row in CORPUS if row["kind"] == "yes_no"]
SCORES = [row for row in CORPUS if row["kind"] == "score"]
DEFECTS = {
    "The caption is not correct.": False,
    "It is not true that ...": False,
    "Aligned: no": False,
    '{"aligned": false}': False,
    "Rating (1-5): 4": 4,
    "On a scale of 1 to 5, I'd give it a 4.": 4,
}


def _id(row: dict) -> str:
    return f"{row['style']}:{row['text'][:40]!r}"


def test_corpus_is_large_varied_and_holds_the_defect_strings():
    assert len(CORPUS) >= 150 and len(YES_NO) >= 100 and len(SCORES) >= 50
    expected = Counter(row["expected"] for row in YES_NO)
    assert expected[True] >= 30 and expected[False] >= 50 and expected[None] >= 25
    assert sum(row["expected"] is None for row in SCORES) >= 15
    styles = {row["style"] for row in CORPUS}
    assert {"gpt-4o", "claude", "qwen2.5-vl-72b", "internvl", "json", "markdown", "cot", "refusal"} <= styles
    assert len({row["text"] for row in CORPUS if row["kind"] == "yes_no"}) == len(YES_NO)  # no copies
    for text, value in DEFECTS.items():
        assert {"text": text, "expected": value} in [
            {"text": r["text"], "expected": r["expected"]} for r in CORPUS
        ]


def test_corpus_file_is_what_the_builder_writes():
    spec = importlib.util.spec_from_file_location("build_judge_answers", ASSETS / "build_judge_answers.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    rows = [{"kind": "yes_no", "style": s, "text": t, "expected": e} for s, t, e in builder.YES_NO]
    rows += [{"kind": "score", "style": s, "text": t, "expected": e} for s, t, e in builder.SCORES]
    assert rows == CORPUS


@pytest.mark.parametrize("row", YES_NO, ids=_id)
def test_yes_no_corpus(row):
    assert parse_yes_no(row["text"]) is row["expected"]


@pytest.mark.parametrize("row", SCORES, ids=_id)
def test_score_corpus(row):
    assert parse_score(row["text"]) == row["expected"]


def test_no_negative_verdict_is_ever_read_as_positive():
    """The hard rule, across the corpus and plain rewrappings of each negative answer (lower case, bold,
    quoted, a trailing newline): a "no" may become None, never True."""
    negatives = [row["text"] for row in YES_NO if row["expected"] is False]
    wraps = [lambda t: t, str.lower, lambda t: f"**{t}**", lambda t: f"> {t}", lambda t: t + "\n"]
    misread = [w(t) for t in negatives for w in wraps if parse_yes_no(w(t)) is True]
    assert not misread, misread
    # Hedged, contradictory or refused answers are not a yes either.
    unclear = [row["text"] for row in YES_NO if row["expected"] is None and parse_yes_no(row["text"]) is True]
    assert not unclear, unclear


def test_judge_module_keeps_the_parsers():
    assert judge_parse_yes_no is parse_yes_no and judge_parse_score is parse_score


@pytest.mark.parametrize(
    "text,low,high,score",
    [("Score: 7/10", 1, 10, 7), ("On a scale of 1 to 10, I'd give it a 7.", 1, 10, 7), ("2", 3, 5, None)],
)
def test_score_other_ranges(text, low, high, score):
    assert parse_score(text, low, high) == score
