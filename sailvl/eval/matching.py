"""Answer matching for multiple-choice and yes/no questions: VLMEvalKit's `exact_matching` policy
(option letters, then option text, then an optional LLM judge with its prompts, retries and fallbacks).

`exact` is the default and reproduces the VLMEvalKit release `VLMEVALKIT_VERSION` answer for answer (proved
by tests/test_eval_vlmeval_parity.py against its own functions), so scores compare with the OpenCompass
leaderboard. `lenient` swaps the first, rule-based step for sailvl's smarter extraction
(`sailvl.eval.lenient`); its numbers are reported under that name and never enter the OpenCompass average."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from sailvl.eval.scorers import process_punctuation

# The ms-vlmeval (VLMEvalKit) release whose scoring sailvl's exact policy reproduces.
VLMEVALKIT_VERSION = "0.0.20"
MATCHING_POLICIES = ("exact", "lenient")

# A judge: prompt text in, reply text out (an OpenAI-compatible client, a local model). A judge whose API
# call failed should return a reply containing JUDGE_FAILURE, as VLMEvalKit's API wrappers do.
TextJudge = Callable[[str], str]
JUDGE_FAILURE = "Failed to obtain answer via API"
MCQ_JUDGE_TRIES = 3
YES_NO_JUDGE_TRIES = 5
REFUSAL = "Z"  # the option "letter" VLMEvalKit gives refusals and unmatched answers

_REFUSAL_PHRASES = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_LETTER_SEPARATORS = str.maketrans({c: " " for c in ".()[],:;!*#{}"})
# A letter is trusted only among the last tokens of the answer (VLMEvalKit's "index > len - 5").
_LAST_TOKENS = 5
_CJK = re.compile("[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Match:
    """The answer a prediction was matched to and how: `answer` is an option letter, "Z", "Yes", "No" or
    None; `source` is "rule" (extraction), "judge" (the judge's reply) or "failed" (neither: MCQ answers
    are then "Z" without a judge and VLMEvalKit's random pick with one, yes/no answers None)."""

    answer: str | None
    source: str


# --- multiple choice -----------------------------------------------------------------------------


def option_letter_in(prediction: str, options: dict[str, str]) -> str | None:
    """The one option letter standing as a token near the end of `prediction`, "Z" for a refusal, or
    None. Letters are case-sensitive; two letters, or one far from the end, give None."""
    if JUDGE_FAILURE in prediction:
        return None
    if any(phrase in prediction for phrase in _REFUSAL_PHRASES):
        return REFUSAL
    tokens = prediction.translate(_LETTER_SEPARATORS).split()
    named = [letter for letter in options if letter in tokens]
    if len(named) == 1:
        return named[0] if tokens.index(named[0]) > len(tokens) - _LAST_TOKENS else None
    if not named and REFUSAL in tokens:
        return REFUSAL
    return None


def option_text_in(prediction: str, options: dict[str, str]) -> str | None:
    """The one option whose text occurs in `prediction` (case-insensitive substring), or None; answers
    longer than twice all option texts together are not read."""
    text = prediction.lower()
    if len(text) > 2 * sum(len(v) for v in options.values()):
        return None
    found = [letter for letter, option in options.items() if option.lower() in text]
    return found[0] if len(found) == 1 else None


def infer_option(prediction: str, options: dict[str, str]) -> str | None:
    """VLMEvalKit's `can_infer`: the option letter (or "Z") by letter first, then by option text."""
    return option_letter_in(prediction, options) or option_text_in(prediction, options)


def _option_list(options: dict[str, str]) -> str:
    return "There are several options: \n" + "".join(f"{k}. {v}\n" for k, v in options.items())


def mcq_judge_prompt(question: str, options: dict[str, str], prediction: str) -> str:
    """VLMEvalKit's prompt asking a judge which option an answer means (Chinese for Chinese questions)."""
    if _CJK.search(question):
        template = (
            "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。"
            "你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。"
            "如果所有选项的意义都与答案显著不同，则输出 Z。"
            "你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。"
            "例 1:"
            "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n"
            "例 2: \n"
            "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n"
            "例 3: \n"
            "问题: {}?\n选项: {}\n答案: {}\n输出: "
        )
    else:
        template = (
            "You are an AI assistant who will help me to match "
            "an answer with several options of a single-choice question. "
            "You are provided with a question, several options, and an answer, "
            "and you need to find which option is most similar to the answer. "
            "If the meaning of all options are significantly different from the answer, output Z. "
            "Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n"
            "Example 1: \n"
            "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
            "Answer: a cute teddy bear\nYour output: A\n"
            "Example 2: \n"
            "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
            "Answer: Spider\nYour output: Z\n"
            "Example 3: \n"
            "Question: {}?\nOptions: {}\nAnswer: {}\nYour output: "
        )
    return template.format(question, _option_list(options), prediction)


OptionRule = Callable[[str, dict[str, str]], str | None]


def match_option(
    prediction: str,
    options: dict[str, str],
    question: str = "",
    judge: TextJudge | None = None,
    rng: random.Random | None = None,
    rule: OptionRule = infer_option,
) -> Match:
    """VLMEvalKit's `extract_answer_from_item`: `rule` first; without a judge an unmatched answer is "Z";
    with one, ask it up to 3 times and read its reply with `rule`; if all fail, a random option or "Z"
    (drawn from `rng`, seeded by the caller for reproducible scores)."""
    found = rule(prediction, options)
    if found:
        return Match(found, "rule")
    if judge is None:
        return Match(REFUSAL, "failed")
    prompt = mcq_judge_prompt(question, options, prediction)
    for _ in range(MCQ_JUDGE_TRIES):
        reply = judge(prompt)
        if JUDGE_FAILURE in reply:
            continue
        found = rule(reply, options)
        if found:
            return Match(found, "judge")
    candidates = list(options) + ([REFUSAL] if REFUSAL not in options else [])
    return Match((rng or random.Random(0)).choice(candidates), "failed")


# --- yes / no ------------------------------------------------------------------------------------


def yes_no_in(prediction: str) -> str | None:
    """VLMEvalKit's `YOrN_Extraction`: "Yes" / "No" when exactly one of the two words stands alone after
    punctuation handling, else None ("**Yes**" and "yes:" are not read)."""
    words = process_punctuation(prediction.lower()).split()
    if "yes" in words and "no" not in words:
        return "Yes"
    if "no" in words and "yes" not in words:
        return "No"
    return None


def yes_no_judge_prompt(question: str, prediction: str) -> str:
    """VLMEvalKit's prompt asking a judge whether an answer means Yes or No."""
    template = (
        "You are an AI assistant who will help me to match an answer with two options of a question. "
        "The options are only Yes / No. "
        "You are provided with a question and an answer, "
        "and you need to find which option (Yes / No) is most similar to the answer. "
        "If the meaning of all options are significantly different from the answer, output Unknown. "
        "Your should output a single word among the following 3 choices: Yes, No, Unknown.\n"
        "Example 1: \n"
        "Question: Is the word in this image 'Hello'?\nAnswer: The word in this image is 'Hello'.\nYour output: Yes\n"
        "Example 2: \n"
        "Question: Is the word in this image 'Hello'?\n"
        "Answer: The word in this image is not 'Hello'.\nYour output: No\n"
        "Example 3: \n"
        "Question: {}?\nAnswer: {}\nYour output: "
    )
    return template.format(question, prediction)


YesNoRule = Callable[[str], str | None]


def match_yes_no(
    prediction: str, question: str = "", judge: TextJudge | None = None, rule: YesNoRule = yes_no_in
) -> Match:
    """VLMEvalKit's yes/no matching: `rule` first, then up to 5 judge replies read with `rule`. (VLMEvalKit
    raises the judge's temperature by 0.5 per try; a `TextJudge` takes only the prompt.)"""
    found = rule(prediction)
    if found:
        return Match(found, "rule")
    if judge is None:
        return Match(None, "failed")
    prompt = yes_no_judge_prompt(question, prediction)
    for _ in range(YES_NO_JUDGE_TRIES):
        found = rule(judge(prompt))
        if found:
            return Match(found, "judge")
    return Match(None, "failed")
