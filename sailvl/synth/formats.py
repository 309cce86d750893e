"""Prompt formats (short answer, multiple choice, yes/no) and the curriculum scores of an SFT sample."""

from __future__ import annotations

import random
import re

from sailvl.synth.qa import MCQ_SUFFIX, QA, SHORT_SUFFIX, YESNO_SUFFIX

LETTERS = "ABCD"
# How an MCQ training answer is written: the letter alone (VLMEvalKit's instruction), or the option's text, then
# its letter ("square D"). A tiny LLM learns the second in a few thousand steps and stays at chance on the first
# (a text-only tiny Qwen2, 4000 steps, measured on these machines); the benchmark's letter extraction reads both.
MCQ_ANSWERS = ("letter", "text-letter")
# How a yes/no training answer is written: the word alone, or what the image shows of the asked attribute, then the
# word ("pink square No" for "Is there a pink circle in the image?"): an open answer, then a comparison with the
# question. The benchmark's yes/no extraction reads both. Measured on issue 27's dev world (EXPERIMENTS.md), the
# tiny model gets the description right (89%) but its word agrees with it only at chance: not used by the demo.
YESNO_ANSWERS = ("word", "seen-word")
OPTION_LINE = re.compile(r"^([A-D])\. (.+)$", re.M)  # "B. red" in an MCQ prompt


def mcq_options(qa: QA, rng: random.Random) -> list[str] | None:
    """Four distinct options containing the answer, shuffled; None when the answer space is too small."""
    distractors = sorted(set(qa.choices) - {qa.answer})
    if len(distractors) < 3:
        return None
    options = rng.sample(distractors, 3) + [qa.answer]
    rng.shuffle(options)
    return options


def mcq_prompt(question: str, options: list[str], hint: str = "") -> str:
    """The VLMEvalKit InternVL multiple-choice prompt (as `sailvl.eval.prompts` builds it): hint, question,
    lettered options, instruction, one per line."""
    lines = ([f"Hint: {hint}"] if hint else []) + [question]
    lines += [f"{LETTERS[k]}. {opt}" for k, opt in enumerate(options)]
    return "\n".join(lines + [MCQ_SUFFIX])


def mcq_answer(options: list[str], answer: str, mode: str = "letter") -> str:
    """The training answer of an MCQ whose right option is `answer`, written as `mode` (MCQ_ANSWERS)."""
    letter = LETTERS[options.index(answer)]
    return f"{answer} {letter}" if mode == "text-letter" else letter


def prompt_options(prompt: str) -> dict[str, str]:
    """The lettered options of an MCQ prompt ({"A": "red", ...})."""
    return dict(OPTION_LINE.findall(prompt))


def short_prompt(question: str) -> str:
    return f"{question}\n{SHORT_SUFFIX}"


def yesno_prompt(question: str) -> str:
    return f"{question}\n{YESNO_SUFFIX}"


def yesno_answer(qa: QA, mode: str = "word") -> str:
    """The training answer of a yes/no question, written as `mode` (YESNO_ANSWERS)."""
    return f"{qa.seen} {qa.answer}" if mode == "seen-word" and qa.seen else qa.answer


def format_for_sft(
    qa: QA, style: str, rng: random.Random, mcq_mode: str = "letter", yesno_mode: str = "word"
) -> tuple[str, str, str]:
    """(prompt, answer, style actually used); MCQ falls back to short answer when options are lacking, and its
    answer is written as `mcq_mode` (MCQ_ANSWERS); yes/no answers as `yesno_mode` (YESNO_ANSWERS)."""
    if qa.answer in ("Yes", "No"):
        return yesno_prompt(qa.question), yesno_answer(qa, yesno_mode), "yesno"
    if style == "mcq":
        options = mcq_options(qa, rng)
        if options is not None:
            return mcq_prompt(qa.question, options), mcq_answer(options, qa.answer, mcq_mode), "mcq"
    if style == "open":
        return qa.question, qa.answer, "open"
    return short_prompt(qa.question), qa.answer, "short"


def complexity_score(question: str, answer: str, steps: int) -> float:
    """Data complexity on a 1-5 scale: reasoning steps plus question and answer length (in words)."""
    raw = 1.0 + 0.6 * (steps - 1) + 0.03 * len(question.split()) + 0.05 * len(answer.split())
    return round(min(5.0, raw), 2)


def relevance_score(weak: bool, rng: random.Random) -> float:
    """Image-text relevance on a 1-5 scale: 4.2-5 for grounded samples, 1-2.5 for deliberately weak ones."""
    return round(rng.uniform(1.0, 2.5) if weak else rng.uniform(4.2, 5.0), 2)


# Text-only questions whose answers do not depend on the image: the flagged weakly related SFT samples.
WEAK_QUESTIONS = (
    ("What is two plus three?", "5"),
    ("What colour is the sky on a clear day?", "blue"),
    ("How many days are in a week?", "7"),
    ("What is the opposite of left?", "right"),
    ("How many sides does a square have?", "4"),
    ("What colour is grass?", "green"),
    ("What is four minus one?", "3"),
    ("Which shape has three corners?", "triangle"),
)
