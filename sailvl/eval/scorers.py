"""Per-answer scorers for short answers, as VLMEvalKit computes them: VQA accuracy (with its answer
normalisation), ANLS, OCRBench containment and ChartQA relaxed accuracy.

Each function mirrors the VLMEvalKit release named by `sailvl.eval.matching.VLMEVALKIT_VERSION`, quirks
included, so a checkpoint's numbers can be compared with the OpenCompass leaderboard; the parity test
(tests/test_eval_vlmeval_parity.py) runs VLMEvalKit's own functions on a corpus of model outputs.
Every scorer returns a float in [0, 1] for one prediction; aggregation lives in `sailvl.eval.aggregate`."""

from __future__ import annotations

import ast
import re

# --- answer normalisation (the official VQA evaluation, as VLMEvalKit runs it) -------------------

_PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")
_LONE_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")
# VLMEvalKit passes re.UNICODE (32) where re.sub takes `count`: at most 32 periods are removed.
_MAX_PERIODS_REMOVED = 32
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
# The VQA evaluation's contraction table (word without apostrophes > word with them). Its capitalised
# keys ("Im", "Ive", ...) are left out: words are lowercased first, so they can never match.
_CONTRACTIONS = dict(
    pair.split(">")
    for pair in (
        "aint>ain't arent>aren't cant>can't couldve>could've couldnt>couldn't couldn'tve>couldn't've "
        "couldnt've>couldn't've didnt>didn't doesnt>doesn't dont>don't hadnt>hadn't hadnt've>hadn't've "
        "hadn'tve>hadn't've hasnt>hasn't havent>haven't hed>he'd hed've>he'd've he'dve>he'd've hes>he's "
        "howd>how'd howll>how'll hows>how's isnt>isn't itd>it'd itd've>it'd've it'dve>it'd've itll>it'll "
        "maam>ma'am mightnt>mightn't mightnt've>mightn't've mightn'tve>mightn't've mightve>might've "
        "mustnt>mustn't mustve>must've neednt>needn't notve>not've oclock>o'clock oughtnt>oughtn't "
        "ow's'at>'ow's'at 'ows'at>'ow's'at 'ow'sat>'ow's'at shant>shan't shed've>she'd've she'dve>she'd've "
        "shouldve>should've shouldnt>shouldn't shouldnt've>shouldn't've shouldn'tve>shouldn't've "
        "somebody'd>somebodyd somebodyd've>somebody'd've somebody'dve>somebody'd've somebodyll>somebody'll "
        "somebodys>somebody's someoned>someone'd someoned've>someone'd've someone'dve>someone'd've "
        "someonell>someone'll someones>someone's somethingd>something'd somethingd've>something'd've "
        "something'dve>something'd've somethingll>something'll thats>that's thered>there'd "
        "thered've>there'd've there'dve>there'd've therere>there're theres>there's theyd>they'd "
        "theyd've>they'd've they'dve>they'd've theyll>they'll theyre>they're theyve>they've twas>'twas "
        "wasnt>wasn't wed've>we'd've we'dve>we'd've weve>we've werent>weren't whatll>what'll whatre>what're "
        "whats>what's whatve>what've whens>when's whered>where'd wheres>where's whereve>where've whod>who'd "
        "whod've>who'd've who'dve>who'd've wholl>who'll whos>who's whove>who've whyll>why'll whyre>why're "
        "whys>why's wont>won't wouldve>would've wouldnt>wouldn't wouldnt've>wouldn't've "
        "wouldn'tve>wouldn't've yall>y'all yall'll>y'all'll y'allll>y'all'll yall'd've>y'all'd've "
        "y'alld've>y'all'd've y'all'dve>y'all'd've youd>you'd youd've>you'd've you'dve>you'd've youll>you'll "
        "youre>you're youve>you've "
    ).split()
)


def process_punctuation(text: str) -> str:
    """Drop or space out punctuation as the VQA evaluation does: a mark next to a space (or any mark, once
    the text holds a digit-comma-digit number) is deleted, otherwise replaced by a space; periods not
    inside numbers are deleted."""
    out = text
    drop_all = _DIGIT_COMMA.search(text) is not None
    for mark in _PUNCTUATION:
        if mark + " " in text or " " + mark in text or drop_all:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _LONE_PERIOD.sub("", out, count=_MAX_PERIODS_REMOVED)


def _digits_and_articles(text: str) -> str:
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def normalize_vqa(text: str) -> str:
    """VQA answer normalisation: punctuation, lowercase, number words to digits, articles dropped,
    contractions restored ("Two dogs." -> "2 dogs")."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_and_articles(process_punctuation(text))


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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQA accuracy (TextVQA): for each reference, min(1, matches among the other references / 3),
    averaged. As in VLMEvalKit, a single reference always scores 0 (no other reference can match)."""
    pred = normalize_vqa(prediction)
    refs = [normalize_vqa(a) for a in answers]
    return _mean(
        [min(1.0, sum(r == pred for j, r in enumerate(refs) if j != i) / 3) for i in range(len(refs))]
    )


def vqa_match(prediction: str, answers: list[str]) -> float:
    """1.0 when the normalised prediction equals any normalised reference. For TSVs with no VLMEvalKit
    counterpart (synthetic benchmarks with one reference each), where VQA accuracy would always be 0."""
    pred = normalize_vqa(prediction)
    return float(any(normalize_vqa(a) == pred for a in answers))


# --- ANLS (DocVQA, InfoVQA) ----------------------------------------------------------------------


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _anls_distance(reference: str, prediction: str) -> float:
    ref = " ".join(reference.strip().lower().split())
    pred = " ".join(prediction.strip().lower().split())
    # VLMEvalKit divides by the length of the raw strings (uppercased), not of the normalised ones.
    longest = max(len(reference.upper()), len(prediction.upper()))
    return 0.0 if longest == 0 else _levenshtein(ref, pred) / longest


def anls(prediction: str, answers: list[str], threshold: float = 0.5) -> float:
    """Average Normalised Levenshtein Similarity of one prediction: 1 - the smallest normalised
    distance to a reference, zeroed when that similarity is below `threshold`."""
    if not answers:
        return 0.0
    similarity = 1.0 - min(_anls_distance(ref, prediction) for ref in answers)
    return 0.0 if similarity < threshold else similarity


# --- OCRBench ------------------------------------------------------------------------------------

HANDWRITTEN_MATH = "Handwritten Mathematical Expression Recognition"


def ocrbench_hit(prediction: str, answers: list[str], category: str = "") -> float:
    """OCRBench: 1.0 when a reference occurs in the prediction, case-insensitively; for handwritten
    math expressions case-sensitively with spaces removed."""
    if category == HANDWRITTEN_MATH:
        pred = prediction.strip().replace("\n", " ").replace(" ", "")
        return float(any(a.strip().replace("\n", " ").replace(" ", "") in pred for a in answers))
    pred = prediction.lower().strip().replace("\n", " ")
    return float(any(a.lower().strip().replace("\n", " ") in pred for a in answers))


# --- relaxed accuracy (ChartQA) ------------------------------------------------------------------


def _relaxed_float(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def _relaxed_correct(target: str, prediction: str, tolerance: float) -> bool:
    pred_num, target_num = _relaxed_float(prediction), _relaxed_float(target)
    if pred_num is not None and target_num:  # a zero target falls back to string equality
        return abs(pred_num - target_num) / abs(target_num) <= tolerance
    return prediction.lower() == target.lower()


def relaxed_accuracy(prediction: str, answers: list[str], tolerance: float = 0.05) -> float:
    """ChartQA relaxed accuracy (pix2struct): a number within `tolerance` relative to a numeric
    reference ("12%" reads 0.12), anything else an exact case-insensitive match; best reference."""
    pred = prediction.strip()
    return float(any(_relaxed_correct(a, pred, tolerance) for a in answers))
