"""The `lenient` matching policy: sailvl's own answer extraction, smarter than VLMEvalKit's exact
matching (lowercase letters, "answer is (B)", the longest option text wins). Its scores are reported under
their own name and never enter the OpenCompass average (see `sailvl.eval.matching`)."""

from __future__ import annotations

import re

_EXPLICIT = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would be|should be|:)?\s*[:：]?\s*\(?\s*([A-Za-z])\s*\)?(?![A-Za-z])",
    re.IGNORECASE,
)
_ONLY_LETTER = re.compile(r"^[\s(\[]*([A-Za-z])[\s)\].:]*$")


def _norm_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def _letter_candidates(prediction: str, letters: set[str]) -> set[str]:
    """Standalone capital letters that name an option; an "A" used as an article is ignored."""
    found = set()
    for match in re.finditer(r"(?<![A-Za-z])([A-Z])(?![A-Za-z'])", prediction):
        letter = match.group(1)
        if letter not in letters:
            continue
        rest = prediction[match.end() :]
        if letter in ("A", "I") and re.match(r"\s+[a-z]", rest):
            continue  # "A red car" / "I think": article or pronoun, not an option
        found.add(letter)
    return found


def _option_by_text(prediction: str, options: dict[str, str]) -> str | None:
    pred = _norm_text(prediction)
    if not pred:
        return None
    texts = {k: _norm_text(v) for k, v in options.items() if _norm_text(v)}
    exact = [k for k, t in texts.items() if t == pred]
    if len(exact) == 1:
        return exact[0]
    padded = f" {pred} "
    contained = [k for k, t in texts.items() if f" {t} " in padded]
    # "dark red" contains "red": keep only options whose text is not inside another matched option.
    maximal = [
        k for k in contained if not any(k != o and f" {texts[k]} " in f" {texts[o]} " for o in contained)
    ]
    return maximal[0] if len(maximal) == 1 else None


def extract_option(prediction: str, options: dict[str, str]) -> str | None:
    """The option letter a free-form answer picks, or None when it picks none or several.

    Order: a lone letter in any case ("b", "(B)"); an explicit "answer is (B)"; a single standalone
    capital letter naming an option ("B. red"); then the option text itself ("red"). Several
    letters or several option texts are ambiguous and give None."""
    if not prediction or not options:
        return None
    letters = set(options)
    text = prediction.strip()
    only = _ONLY_LETTER.match(text)
    if only and only.group(1).upper() in letters:
        return only.group(1).upper()
    explicit = [m.group(1).upper() for m in _EXPLICIT.finditer(text) if m.group(1).upper() in letters]
    if len(set(explicit)) == 1:
        return explicit[0]
    candidates = _letter_candidates(text, letters)
    if len(candidates) == 1:
        return candidates.pop()
    if candidates:
        return None  # several letters named: ambiguous
    return _option_by_text(text, options)


def extract_yes_no(prediction: str) -> str | None:
    """ "Yes" / "No" when exactly one of the two words occurs (any punctuation around it), else None."""
    words = set(_norm_text(prediction).split())
    if "yes" in words and "no" not in words:
        return "Yes"
    if "no" in words and "yes" not in words:
        return "No"
    return None
