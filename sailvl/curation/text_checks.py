"""Caption text checks: length bounds, degenerate repetition (repeated n-grams), garbage characters,
and an optional cheap language check."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

from pydantic import Field

from sailvl.curation.records import caption_of
from sailvl.curation.step import Filter, StepParams, register_step

_WORD = re.compile(r"\w+", re.UNICODE)
# Function words that make up a large share of any running English text; captions in other languages
# (or word salad) hit almost none of them.
_EN_STOPWORDS = frozenset(
    "a an the of in on at to and or with is are was were be this that there it its by for from as".split()
)


class TextChecksParams(StepParams):
    min_words: int = Field(3, ge=0, description="Reject captions with fewer words.")
    max_words: int = Field(1000, ge=1, description="Reject captions with more words.")
    min_chars: int = Field(1, ge=0, description="Reject captions shorter than this (characters, stripped).")
    ngram: int = Field(3, ge=1, description="n of the repeated n-gram check.")
    max_repeated_ngram_fraction: float = Field(
        0.3, ge=0.0, le=1.0, description="Reject when this share of n-grams are repeats of an earlier n-gram."
    )
    min_alpha_fraction: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Reject when letters make up less than this share of non-space chars.",
    )
    language: Literal["en"] | None = Field(
        None, description="'en' keeps only captions that look English; None: no check."
    )
    min_stopword_fraction: float = Field(
        0.08, ge=0.0, le=1.0, description="Share of words that are stopwords."
    )


def repeated_ngram_fraction(words: list[str], n: int) -> float:
    """Share of the text's n-grams that repeat an earlier one (0 for no repetition, -> 1 for loops)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)


def text_reject_reason(text: str, p: TextChecksParams) -> str | None:
    """The first failed check for `text` (None when all pass)."""
    stripped = text.strip()
    if len(stripped) < max(p.min_chars, 1):
        return "text_empty"
    words = [w.lower() for w in _WORD.findall(stripped)]
    chars = [c for c in stripped if not c.isspace()]
    if sum(c.isalpha() for c in chars) < p.min_alpha_fraction * len(chars):
        return "text_garbage"
    if len(words) < p.min_words:
        return "text_too_short"
    if len(words) > p.max_words:
        return "text_too_long"
    if repeated_ngram_fraction(words, p.ngram) > p.max_repeated_ngram_fraction:
        return "text_repetitive"
    if p.language == "en" and sum(w in _EN_STOPWORDS for w in words) < p.min_stopword_fraction * len(words):
        return "text_language"
    return None


@register_step("text_checks")
class TextChecks(Filter):
    """Reject captions (last assistant turn) that are empty, garbage, too short/long or degenerate."""

    Params = TextChecksParams

    def keep(self, record: Any) -> bool | tuple[bool, str]:
        reason = text_reject_reason(caption_of(record), self.params)  # type: ignore[arg-type]
        return (False, reason) if reason else True
