"""Per-answer scorers: MCQ option extraction, yes/no, VQA accuracy, ANLS, OCRBench containment, relaxed accuracy.

Every scorer returns a float in [0, 1] for one prediction; aggregation lives in `sailvl.eval.aggregate`."""

from __future__ import annotations

import ast
import re

# --- multiple choice ---------------------------------------------------------------------------

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
    letters or several option texts are ambiguous and give None, as in VLMEvalKit."""
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
        return None  # several letters named: ambiguous, counted wrong as VLMEvalKit does
    return _option_by_text(text, options)


def score_mcq(prediction: str, options: dict[str, str], answer: str) -> float:
    """1.0 when the extracted option letter equals the answer letter (or the answer's option text)."""
    picked = extract_option(prediction, options)
    if picked is None:
        return 0.0
    answer = answer.strip()
    if answer in options:
        return float(picked == answer)
    return float(_norm_text(options[picked]) == _norm_text(answer))


# --- yes / no ----------------------------------------------------------------------------------


def extract_yes_no(prediction: str) -> str | None:
    """ "yes" / "no" when exactly one of the two words occurs, else None (counted wrong)."""
    words = set(_norm_text(prediction).split())
    if "yes" in words and "no" not in words:
        return "yes"
    if "no" in words and "yes" not in words:
        return "no"
    return None


def score_yes_no(prediction: str, answer: str) -> float:
    """1.0 when the extracted yes/no equals the answer (case-insensitive)."""
    picked = extract_yes_no(prediction)
    return float(picked is not None and picked == answer.strip().lower())


# --- short-answer VQA --------------------------------------------------------------------------

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {
    "dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "cant": "can't",
    "wont": "won't", "didnt": "didn't", "wasnt": "wasn't", "werent": "weren't", "hasnt": "hasn't",
    "havent": "haven't", "shouldnt": "shouldn't", "wouldnt": "wouldn't", "couldnt": "couldn't",
    "im": "i'm", "ive": "i've", "youre": "you're", "thats": "that's", "whats": "what's", "its": "it's",
}  # fmt: skip
_PUNCT = ';/[]"{}()=+\\_-><@`,?!*#%^&$~|:'
_COMMA_NUMBER = re.compile(r"(\d)(,)(\d)")
_PERIOD_STRIP = re.compile(r"(?<!\d)\.(?!\d)")


def normalize_vqa(text: str) -> str:
    """Standard VQA answer normalisation: lowercase, punctuation, periods not inside numbers,
    number words to digits, articles dropped, common contractions restored."""
    text = text.replace("\n", " ").replace("\t", " ").strip().lower()
    text = _COMMA_NUMBER.sub(r"\1\3", text)
    for p in _PUNCT:
        # Punctuation next to a space is dropped; inside a word it separates ("black-and-white").
        text = text.replace(p, "") if (p + " " in text or " " + p in text) else text.replace(p, " ")
    text = _PERIOD_STRIP.sub("", text)
    words = []
    for word in text.split():
        word = _NUMBER_WORDS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def parse_answers(answer: str) -> list[str]:
    """A TSV answer cell as a list: VLMEvalKit stores multi-reference answers as a Python list string."""
    text = answer.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return [text]
        if isinstance(parsed, list | tuple) and parsed:
            return [str(x) for x in parsed]
    return [text]


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA accuracy: with >= 3 references, min(1, matches/3) averaged over leave-one-out subsets
    (the official VQAv2/TextVQA metric); with fewer, 1.0 if the prediction matches any reference."""
    pred = normalize_vqa(prediction)
    refs = [normalize_vqa(a) for a in answers]
    if len(refs) < 3:
        return float(pred in refs)
    total = 0.0
    for i in range(len(refs)):
        others = refs[:i] + refs[i + 1 :]
        total += min(1.0, sum(r == pred for r in others) / 3.0)
    return total / len(refs)


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(prediction: str, answers: list[str], threshold: float = 0.5) -> float:
    """Average Normalised Levenshtein Similarity for one prediction: max over references of
    1 - dist/max_len, zeroed when the normalised distance reaches `threshold` (DocVQA/InfoVQA)."""
    pred = " ".join(prediction.strip().lower().split())
    best = 0.0
    for ref in answers:
        ref = " ".join(ref.strip().lower().split())
        longest = max(len(pred), len(ref))
        if longest == 0:
            return 1.0
        distance = _levenshtein(pred, ref) / longest
        best = max(best, 0.0 if distance >= threshold else 1.0 - distance)
    return best


def ocrbench_hit(prediction: str, answers: list[str], category: str = "") -> float:
    """OCRBench: 1.0 when any reference is contained in the prediction (case-insensitive);
    handwritten math expressions are compared with all whitespace removed."""
    if "handwritten mathematical expression" in category.lower():
        pred = re.sub(r"\s+", "", prediction)
        return float(any(re.sub(r"\s+", "", a) in pred for a in answers if a.strip()))
    pred = " ".join(prediction.lower().split())
    return float(any(" ".join(a.lower().split()) in pred for a in answers if a.strip()))


def _to_float(text: str) -> float | None:
    text = text.strip().rstrip(".").replace(",", "")
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    try:
        return float(text) * scale
    except ValueError:
        return None


def relaxed_accuracy(prediction: str, answers: list[str], tolerance: float = 0.05) -> float:
    """ChartQA relaxed accuracy: numbers may differ by `tolerance` relative to the reference;
    other answers must match exactly (case-insensitive)."""
    pred = prediction.strip().rstrip(".")
    for ref in answers:
        pred_num, ref_num = _to_float(pred), _to_float(ref)
        if pred_num is not None and ref_num is not None:
            if ref_num == 0.0:
                if pred_num == 0.0:
                    return 1.0
            elif abs(pred_num - ref_num) / abs(ref_num) <= tolerance:
                return 1.0
        elif pred.lower() == ref.strip().lower():
            return 1.0
    return 0.0
