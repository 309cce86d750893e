"""Reading a judge model's answer as a person would: a yes/no alignment verdict or a 1-5 score, from a bare
word, a sentence with negation, `key: value` lines, JSON (fenced or not), markdown, or reasoning followed by a
conclusion. The explicit final verdict wins over words in the reasoning; an answer that is unclear,
contradictory, truncated before its verdict, or a refusal ("I cannot view images") is None, never a guess."""

from __future__ import annotations

import json
import re
from typing import Any

# -- shared clean-up -------------------------------------------------------------------------------------------
_REFUSAL = re.compile(
    r"(?:can ?not|can't|unable to|not able to|don't have the ability to|do not have the ability to)\s+"
    r"(?:directly\s+)?(?:view|see|access|open|process|analy[sz]e|look at|display|perceive|evaluate)\s+"
    r"(?:the |this |that |any |your )?(?:attached |provided |uploaded |actual )?(?:image|picture|photo)s?\b"
    r"|\bno (?:image|picture|photo) (?:was|is|has been|were) (?:provided|attached|shared|uploaded|included)",
    re.IGNORECASE,
)
_THINK_END = "</think>"
_FENCE = re.compile(r"```[a-zA-Z]*\n?|```")
# A markdown heading naming the verdict ("### Verdict" then "**No**" on a later line) reads as "Verdict: No".
_HEADING_KEY = re.compile(
    r"^#+\s*(final answer|final verdict|verdict|answer|conclusion|rating|score|final score|richness)\s*:?\s*\n+",
    re.IGNORECASE | re.MULTILINE,
)
_MARKUP = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|`|^\s*#+\s*|^\s*>\s?", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+", re.MULTILINE)


def _after_thinking(text: str) -> str:
    """The answer after a `<think>...</think>` block when there is one (the reasoning otherwise)."""
    if _THINK_END in text:
        before, _, after = text.rpartition(_THINK_END)
        return after if after.strip() else before.replace("<think>", "")
    return text


def _plain(text: str, keep_numbered: bool = False) -> str:
    """Markdown reduced to its words: fences, emphasis, quote marks and bullets gone, verdict headings as keys."""
    text = _HEADING_KEY.sub(lambda m: m.group(1) + ": ", _FENCE.sub("", text))
    text = _MARKUP.sub("", text)
    return text if keep_numbered else _BULLET.sub("", text)


def _json_value(text: str, keys: tuple[str, ...]) -> tuple[bool, Any]:
    """`(found, value)` of the first of `keys` (case-insensitive) in a JSON object inside the answer."""
    for match in re.finditer(r"\{[^{}]*\}", _FENCE.sub("", text)):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        lowered = {str(k).lower(): v for k, v in obj.items()} if isinstance(obj, dict) else {}
        for key in keys:
            if key in lowered:
                return True, lowered[key]
    return False, None


# -- yes / no --------------------------------------------------------------------------------------------------
UNSURE = "unsure"
_POSITIVE = set(
    "yes yep yeah yup true correct correctly accurate accurately aligned align aligns matches match matching "
    "consistent faithful faithfully affirmative".split()
)
_NEGATIVE = set(
    "no nope nah false incorrect incorrectly inaccurate inaccurately misaligned unaligned mismatch mismatched "
    "mismatches wrong wrongly inconsistent hallucination hallucinations hallucinated hallucinates error errors "
    "mistake mistakes discrepancy discrepancies contradicts contradict contradiction negative misrepresents "
    "misdescribes misidentifies mislabels miscounts misleading disagree".split()
)
_NEGATORS = set(
    "not never no without nothing none neither nor cannot fails fail failed lacks hardly free".split()
)
# "this part is correct" says nothing of the whole caption ("this part is wrong" does).
_PARTIAL = {"part", "parts", "portion", "aspect", "aspects"}
_EMPHATIC = set(
    "absolutely definitely certainly of course quite really at all exactly entirely completely i i'm afraid think "
    "it does do".split()
)
_HEDGES = set(
    "partially partly mostly largely somewhat generally roughly approximately mainly seems seem appears "
    "probably likely possibly maybe perhaps might".split()
)
_UNSURE = re.compile(
    r"\b(?:not (?:sure|certain)|unsure|uncertain|unclear|ambiguous|it depends|maybe|possibly|perhaps|"
    r"(?:hard|difficult|impossible) to (?:say|tell|determine|judge)|can(?:'t|not| not) (?:tell|determine|say)|"
    r"yes and no|yes or no)\b",
    re.IGNORECASE,
)
_EXCEPT = re.compile(r"\b(?:except|apart from|other than|but for)\b", re.IGNORECASE)
_QUALIFIED = re.compile(r"\b(?:mostly|largely|partially|partly|somewhat|almost|nearly)\b", re.IGNORECASE)
_NON_ASSERTING = {"whether", "if"}
_CLAUSE_SPLIT = re.compile(
    r"[,;:()\u2014\u2013]|\s-\s|\b(?:but|however|although|though|whereas|while|yet|except|and|so|therefore|thus|"
    r"hence|because|since|which|instead)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_CONCLUSION = re.compile(
    r"\b(?:final (?:answer|verdict|decision)|verdict|conclusion|in conclusion|to conclude|in summary|"
    r"to summari[sz]e|overall|all in all|in short|therefore|thus|hence|consequently|"
    r"(?:the|my) answer (?:is|would be)|so(?! (?:far|that|much|many)\b))\b",
    re.IGNORECASE,
)
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z][A-Za-z _/-]{0,40}?)\s*[:=]\s*(?P<value>[^\n:=.!?;]+)")
_ALIGN_KEYS = {
    "answer", "final answer", "verdict", "final verdict", "aligned", "alignment", "is aligned", "ita",
    "image-text alignment", "image text alignment", "correct", "accurate", "match", "matches", "matches image",
    "consistent", "judgement", "judgment", "decision", "result", "conclusion", "label", "output",
    "assessment", "evaluation", "response",
}  # fmt: skip
_INVERTED_KEYS = {
    "misaligned",
    "hallucination",
    "hallucinated",
    "contains errors",
    "errors",
    "error",
    "mismatch",
}
_JSON_ALIGN_KEYS = (
    "aligned", "is_aligned", "alignment", "ita", "verdict", "answer", "final_answer", "correct", "match",
    "matches", "label", "result", "decision", "judgement", "judgment",
)  # fmt: skip


def _clause_polarity(clause: str) -> int | str:
    """+1 / -1 for a clause that says yes / no about the caption, UNSURE for a hedge, 0 for no verdict."""
    if _UNSURE.search(clause):
        return UNSURE
    words = _WORD.findall(clause.lower())
    if "not" in words and set(words) <= _EMPHATIC | {"not"}:
        return -1  # "Not at all", "Absolutely not", "Not quite"
    found: set[int] = set()
    negated = hedged = False
    for i, word in enumerate(words):
        if word in _NON_ASSERTING:
            return 0  # "whether the caption is accurate" restates the question
        term = 1 if word in _POSITIVE else -1 if word in _NEGATIVE else 0
        # "no" is a verdict only when it ends its clause ("No, ..."); "no dog" / "no errors" negate.
        if word == "no" and i < len(words) - 1:
            term = 0
        if term:
            polarity = -term if negated else term
            found.add(UNSURE if hedged and polarity > 0 else polarity)  # type: ignore[arg-type]
        if word in _NEGATORS or word.endswith("n't"):
            negated = True
        if word in _HEDGES:
            hedged = True
    if found == {1} and _PARTIAL & set(words):
        return 0
    if len(found) == 1:
        return found.pop()
    return UNSURE if found else 0


def _span_polarity(span: str) -> int | str:
    """Polarity of a sentence or value: its clauses' verdicts, UNSURE when they disagree or hedge."""
    found = {p for p in (_clause_polarity(c) for c in _CLAUSE_SPLIT.split(span)) if p != 0}
    if found == {1} and _EXCEPT.search(span):
        return -1  # "accurate except for the colour of the square": the judge names an error
    if found == {1} and _QUALIFIED.search(span):
        return UNSURE  # "Yes, mostly", "largely accurate": a qualified yes is no yes
    if len(found) == 1:
        return found.pop()
    return UNSURE if found else 0


def _bare(span: str) -> int | str:
    """The verdict of a span that is nothing but one ("No", "Yes.", "Not at all", "Absolutely not"), else 0."""
    return _clause_polarity(span) if 0 < len(_WORD.findall(span.lower())) <= 3 else 0


def _explicit_verdicts(text: str, sentences: list[tuple[int, str]]) -> list[tuple[int, int | str]]:
    """`(position, polarity)` of stated verdicts: `key: value` lines and spans after a conclusion word."""
    verdicts = []
    for m in _KEY_VALUE.finditer(text):
        words = m.group("key").strip().lower().split()
        names = {" ".join(words[-n:]) for n in (1, 2, 3)}
        value = m.group("value")
        if text[m.end() : m.end() + 1] == "?":
            continue  # "Answer: is the caption correct?" restates the question
        if names & _INVERTED_KEYS:  # "Hallucination: yes" is a no; only a bare answer is read
            head = _CLAUSE_SPLIT.split(value)[0].strip().lower()
            polarity = {"yes": -1, "true": -1, "no": 1, "false": 1, "none": 1}.get(head, 0)
        else:
            polarity = _span_polarity(value) if names & _ALIGN_KEYS else 0
        if polarity != 0:
            verdicts.append((m.start(), polarity))
    for start, sentence in sentences:
        markers = list(_CONCLUSION.finditer(sentence))
        polarity = _span_polarity(sentence[markers[-1].end() :]) if markers else 0
        if polarity != 0:
            verdicts.append((start + markers[-1].start(), polarity))
    return sorted(verdicts, key=lambda v: v[0])


def _as_bool(polarity: int | str) -> bool | None:
    return None if polarity in (0, UNSURE) else polarity == 1


def parse_yes_no(text: str | None) -> bool | None:
    """Whether a judge answer says the caption is aligned: True (yes), False (no), or None when the answer
    is empty, unclear, contradictory, hedged, or a refusal. Order of trust: a JSON verdict key; the last
    stated verdict (`Answer: no`, `Final answer: ...`, "so ...", "Therefore ...") unless a later sentence
    says the opposite; a bare yes/no closing or opening the answer; the sentences' verdicts when they agree.
    A leading "Yes" followed by a negative sentence is contradictory, never a yes."""
    text = _after_thinking(text or "").strip()
    if not text or _REFUSAL.search(text):
        return None
    found, value = _json_value(text, _JSON_ALIGN_KEYS)
    if found:
        if isinstance(value, bool):
            return value
        return _as_bool(_span_polarity(value)) if isinstance(value, str) else None
    text = _plain(text)
    # Questions restate the prompt ("Is the caption correct?"), they are no verdict.
    sentences = [
        (m.start(), m.group(0)) for m in _SENTENCE.finditer(text) if not m.group(0).rstrip().endswith("?")
    ]
    said = [(start, p) for start, p in ((s, _span_polarity(x)) for s, x in sentences) if p != 0]
    explicit = _explicit_verdicts(text, sentences)
    if explicit:
        at, polarity = explicit[-1]
        later = {p for start, p in said if start > at}
        return None if polarity in (1, -1) and -polarity in later else _as_bool(polarity)  # type: ignore[operator]
    if not said:
        return None
    first = _bare(_CLAUSE_SPLIT.split(sentences[0][1])[0])
    last = _bare(sentences[-1][1]) if len(sentences) > 1 else 0
    if last in (1, -1):
        return None if first in (1, -1) and first != last else last == 1
    verdicts = [p for _, p in said]
    if first in (1, -1) and verdicts[-1] != UNSURE:
        return None if first == 1 and -1 in verdicts else first == 1
    return _as_bool(verdicts[0]) if len(set(verdicts)) == 1 else None


# -- scores ----------------------------------------------------------------------------------------------------
_WORD_NUMBERS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10}
_NUM = r"(\d+(?:\.\d+)?|zero|one|two|three|four|five|six|ten)\b"
# A score that is a range or a rubric line ("3 or 4", "3-4", "5 = every object", "a 5 would need") is no score.
_NOT_A_SCORE = (
    r"(?!\s*(?:or|to|-|\u2013)\s*(?:\d|one|two|three|four|five)\b)"
    r"(?!\s*(?:=|means\b|would\b|is for\b|is reserved\b|requires\b))"
)
_MARKER = re.compile(
    r"\b(?:score|scores|scored|rating|rated|rate|rates|richness|vir|grade|level|give|giving|gave|deserves?|"
    r"earns?|merits?|answer|go with|say|scale|boxed|(?:is|it's|as|gets?)\s+(?:a|an))\b"
    r"[\s:=*#\-\u2013(\[\]){},\u2605\u2606]*(?:(?!\d)[\w']+[\s:=*\-,(]+){0,3}?" + _NUM + _NOT_A_SCORE,
    re.IGNORECASE,
)
_LEADING = re.compile(r"^[\W_]*" + _NUM + r"(?!\.\d)" + _NOT_A_SCORE, re.IGNORECASE)
_SCALE = re.compile(
    r"\b(\d+)\s*(?:-|\u2013|to|through)\s*(\d+)\b|\bbetween\s+(\d+)\s+and\s+(\d+)\b|"
    r"\bfrom\s+(\d+)\b[^.\n]{0,80}?\bto\s+(\d+)\b|(?:/|\bout of)\s*(\d+)\b",
    re.IGNORECASE,
)
_TRAILING = re.compile(r"(?:(?<=[!?\n])|(?<=\D\.))[^\w\n]*" + _NUM + r"[\s.*)]*$", re.IGNORECASE)
_ENDS_IN_NUMBER = re.compile(r"(?:\d|\b(?:one|two|three|four|five|six|ten))\s*$", re.IGNORECASE)
_LIST_LINE = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)
_JSON_SCORE_KEYS = ("score", "rating", "vir", "richness", "final_score", "grade", "value", "answer")


def _number(raw: str) -> float:
    return float(_WORD_NUMBERS[raw.lower()]) if raw.isalpha() else float(raw)


def _mask_scales(text: str, low: int, high: int) -> str | None:
    """The answer with the scale's own bounds blanked out ("(1-5)", "1 to 5", "out of 5", "/5"), or None when
    it scores on another scale ("7/10", "1 to 10")."""

    def blank(m: re.Match[str]) -> str:
        nums = [int(g) for g in m.groups() if g is not None]
        if nums == [low, high] or nums == [high]:
            return " " * len(m.group(0))
        after_number = _ENDS_IN_NUMBER.search(m.string[: m.start()]) is not None
        if (len(nums) == 1 and after_number) or (len(nums) == 2 and nums[0] == low):
            raise ValueError("another scale")  # "7/10", "4 out of 10", "1-10"
        return m.group(0)  # "between 3 and 4" (undecided), "2 shapes out of 4": not the scale

    try:
        return _SCALE.sub(blank, text)
    except ValueError:
        return None


def _in_range(value: float, low: int, high: int) -> int | None:
    return int(value) if value.is_integer() and low <= value <= high else None


def parse_score(text: str | None, low: int = 1, high: int = 5) -> int | None:
    """The integer score in [low, high] a judge answer gives ('4', 'Score: 4/5', '**four**', 'Rating (1-5): 4',
    "On a scale of 1 to 5, I'd give it a 4", `{"score": 4}`): a JSON score key, else the last number after a
    score word ("score", "rating", "I'd give it", "Final answer"), else a number the answer opens with. The
    scale's bounds are never read as the score; None for a refusal, a range ("3 or 4"), a half point, another
    scale ("7/10"), or no score at all."""
    text = _after_thinking(text or "").strip()
    if not text or _REFUSAL.search(text):
        return None
    found, value = _json_value(text, _JSON_SCORE_KEYS)
    if found:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None
        return (
            _in_range(float(value), low, high)
            if not isinstance(value, str)
            else parse_score(value, low, high)
        )
    masked = _mask_scales(_plain(text, keep_numbered=True), low, high)
    if masked is None:
        return None
    stated = [(m.start(), m.group(1)) for m in _MARKER.finditer(_BULLET.sub("", masked))]
    stated += [(m.start(), m.group(1)) for m in _TRAILING.finditer(masked)]
    if stated:  # the last stated score: a conclusion after the reasoning
        return _in_range(_number(max(stated)[1]), low, high)
    leading = _LEADING.match(masked)
    if leading is None or len(_LIST_LINE.findall(masked)) > 1:
        return None  # no score, or a numbered list of reasons rather than a score
    return _in_range(_number(leading.group(1)), low, high)
