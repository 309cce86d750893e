"""Lookup drills: short text records in the synthetic world's question templates over a one-sentence description.

The pretrained base's text LLM (sailvl.experiment.pretrained) answers MCQ and yes/no from a description given in
text. Trained on the world's text alone it learns the digit and shape lookups (pick the letter of the option it
named; say whether the asked value is the described one) but stays at chance on colour, on every seed and in every
mix tried (EXPERIMENTS.md, "Colour lookups: what blocks them"). Colour drills alone, with the colour described as a
predicate ("The triangle is pink."), teach the colour lookup in 2000 steps; the world's corpus with these drills
shuffled in then brings the other lookups without losing it. The base trains those stages from the records here.

Forms change one thing at a time (scripts/lookup_probe.py trains each):
- `modifier`: "A pink triangle on a pale blue background." (the world's caption style);
- `predicate`: colour drills describe the colour as "The triangle is pink.";
- `no-anchor`: shape yes/no without a colour ("Is there a circle?") and digits without ink colour;
- `colour-only`: only the colour drills (MCQ and yes/no in turn), modifier form;
- `colour-predicate`: only the colour drills, predicate form (the base's first stage).
"""

from __future__ import annotations

import random

from sailvl.synth.formats import mcq_answer, mcq_prompt, yesno_prompt
from sailvl.synth.scenes import COLOURS, PLAIN_BACKGROUNDS, SHAPES

FORMS = ("modifier", "predicate", "no-anchor", "colour-only", "colour-predicate")
DIGITS = tuple(str(k) for k in range(10))


def _record(i: int, task: str, style: str, prompt: str, answer: str) -> dict:
    turns = [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]
    return {"id": f"drill-{i}", "task": task, "format": style, "conversations": turns}


def _other(rng: random.Random, value: str, space: list[str]) -> str:
    return rng.choice([x for x in space if x != value])


def _mcq(rng: random.Random, desc: str, question: str, value: str, space: list[str]) -> tuple[str, str]:
    """An MCQ prompt and its text-letter answer ("pink C"); four-value spaces (shapes) list every value."""
    others = [x for x in space if x != value]
    options = list(space) if len(space) == 4 else [value, *rng.sample(others, 3)]
    rng.shuffle(options)
    prompt = mcq_prompt(f"Description: {desc}\n{question}", options)
    return prompt, mcq_answer(options, value, "text-letter")


def drills(n: int, seed: int | str, form: str = "modifier") -> list[dict]:
    """`n` drill records, the six (task, style) kinds in turn (the colour-only forms: colour MCQ and yes/no in
    turn). Half the yes/no answers are "Yes"; modifier descriptions put the object on a plain background half the
    time."""
    if form not in FORMS:
        raise ValueError(f"drill form {form!r}: expected one of {', '.join(FORMS)}")
    rng = random.Random(seed)
    colours, shapes, digits = list(COLOURS), list(SHAPES), list(DIGITS)
    out = []
    for i in range(n):
        kind = i % 2 if form.startswith("colour-") else i % 6
        c, s, d = rng.choice(colours), rng.choice(shapes), rng.choice(digits)
        verdict = "Yes" if rng.random() < 0.5 else "No"
        where = f" on a {rng.choice(list(PLAIN_BACKGROUNDS))} background" if rng.random() < 0.5 else ""
        if kind < 4:
            predicate = form in ("predicate", "colour-predicate") and kind < 2
            desc = f"The {s} is {c}." if predicate else f"A {c} {s}{where}."
        else:
            ink = "" if form == "no-anchor" else f" in {c} ink"
            desc = f"The handwritten digit {d}{ink}."
        if kind == 0:
            out.append(_record(i, "colour", "mcq", *_mcq(rng, desc, "What colour is the shape?", c, colours)))
        elif kind == 1:
            asked = c if verdict == "Yes" else _other(rng, c, colours)
            prompt = yesno_prompt(f"Description: {desc}\nIs the shape {asked}?")
            out.append(_record(i, "colour", "yesno", prompt, verdict))
        elif kind == 2:
            out.append(_record(i, "shape", "mcq", *_mcq(rng, desc, "What shape is the shape?", s, shapes)))
        elif kind == 3:
            asked = s if verdict == "Yes" else _other(rng, s, shapes)
            thing = asked if form == "no-anchor" else f"{c} {asked}"
            prompt = yesno_prompt(f"Description: {desc}\nIs there a {thing} in the image?")
            out.append(_record(i, "shape", "yesno", prompt, verdict))
        elif kind == 4:
            question = "What digit is written in the image?"
            out.append(_record(i, "digit", "mcq", *_mcq(rng, desc, question, d, digits)))
        else:
            asked = d if verdict == "Yes" else _other(rng, d, digits)
            prompt = yesno_prompt(f"Description: {desc}\nIs the handwritten digit a {asked}?")
            out.append(_record(i, "digit", "yesno", prompt, verdict))
    return out
