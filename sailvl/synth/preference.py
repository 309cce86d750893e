"""Preference pairs of the synthetic world: each SFT task question with its correct answer (chosen) and a
corrupted answer of the same kind (rejected): another colour, shape, number, place or word, the wrong option
letter, or the other of yes / no. Written as `preference.jsonl` (sailvl's preference record format)."""

from __future__ import annotations

import random

from sailvl.synth.formats import LETTERS, prompt_options
from sailvl.synth.qa import LOCATIONS
from sailvl.synth.scenes import COLOURS, SHAPES
from sailvl.synth.text_ocr import WORDS

# Answer spaces a wrong answer of the same kind is drawn from.
_SPACES = (tuple(COLOURS), SHAPES, LOCATIONS, WORDS)


def corrupt_answer(answer: str, style: str, prompt: str, rng: random.Random) -> str | None:
    """A wrong answer of the same kind as `answer`, or None when there is none (captions, free text)."""
    # yes/no: the word alone, or what the image shows, then the word (synth --yesno-answer seen-word)
    if style == "yesno":
        *seen, word = answer.split() or [answer]
        other = {"Yes": "No", "No": "Yes"}.get(word)
        return None if other is None else " ".join([*seen, other])
    if style == "mcq":  # the letter alone, or "option text, then letter" (synth --mcq-answer text-letter)
        options = prompt_options(prompt)
        right = answer.split()[-1] if answer.split() else answer
        wrong = [letter for letter in LETTERS if letter in options and letter != right]
        if not wrong:
            return None
        letter = rng.choice(wrong)
        return letter if answer == right else f"{options[letter]} {letter}"
    for space in _SPACES:
        if answer in space:
            return rng.choice([a for a in space if a != answer])
    if answer.isdigit():  # a near miss: a wrong number far outside the answer range would be a give-away
        return str(
            rng.choice([k for k in range(int(answer) - 2, int(answer) + 3) if k >= 0 and k != int(answer)])
        )
    return None


def preference_records(sft: list[dict], seed: int) -> list[dict]:
    """Preference records from the world's SFT records: the same id, image and prompt, the correct answer as
    the last turn and a corrupted one in `rejected`; records whose answer has no wrong twin are left out."""
    out = []
    for record in sft:
        prompt, answer = record["conversations"][0]["value"], record["conversations"][-1]["value"]
        rng = random.Random(f"sailvl-synth/{seed}/preference/{record['id']}")
        rejected = corrupt_answer(answer, record.get("format", "short"), prompt, rng)
        if rejected is not None and record.get("task") != "general":
            out.append({**record, "rejected": rejected})
    return out
