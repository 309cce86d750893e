"""Yes/no questions (POPE/HallusionBench style) with adversarial negatives that swap one attribute."""

from __future__ import annotations

import random

from sailvl.synth.qa import QA, TASK_KIND, colourless_ref, relation_holds
from sailvl.synth.scenes import COLOURS, SHAPES, Scene
from sailvl.synth.text_ocr import WORDS

OPPOSITE = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}


def _yn(task: str, question: str, yes: bool, difficulty: int, steps: int, seen: str) -> QA:
    return QA(task, question, "Yes" if yes else "No", difficulty, steps, ("Yes", "No"), seen)


def yesno_qa(scene: Scene, task: str, want_yes: bool, rng: random.Random) -> QA | None:
    """A yes/no question of `task` whose answer is `want_yes`; None when the scene cannot support it."""
    if TASK_KIND.get(task) != scene.kind:
        return None
    objs = scene.objects
    if task == "colour":
        o = rng.choice(objs)
        colour = o.colour if want_yes else rng.choice([c for c in COLOURS if c != o.colour])
        return _yn(task, f"Is {colourless_ref(o, objs)} {colour}?", want_yes, 1, 1, o.colour)
    if task == "shape":
        # Existence, POPE-style; a negative reuses a colour and a shape that are present (adversarial).
        present = {(o.colour, o.shape) for o in objs}
        if want_yes:
            colour, shape = rng.choice(sorted(present))
        else:
            absent = [(o.colour, s) for o in objs for s in SHAPES if (o.colour, s) not in present]
            if not absent:
                return None
            colour, shape = rng.choice(absent)
        seen = " and ".join(sorted({f"{o.colour} {o.shape}" for o in objs if o.colour == colour}))
        return _yn(task, f"Is there a {colour} {shape} in the image?", want_yes, 1, 1, seen)
    if task == "count":
        k = len(objs) if want_yes else rng.choice([k for k in range(1, 7) if k != len(objs)])
        return _yn(task, f"Are there exactly {k} shapes in the image?", want_yes, 2, 1, str(len(objs)))
    if task == "position":
        if len(objs) < 2:
            return None
        a, b = rng.sample(objs, 2)
        rels = [r for r in OPPOSITE if relation_holds(a, r, b)]
        holds = rng.choice(rels)
        rel = holds if want_yes else OPPOSITE[holds]
        return _yn(task, f"Is the {a.name} {rel} the {b.name}?", want_yes, 2, 2, holds)
    if task == "digit":
        d = rng.choice(scene.digits)
        value = d.value if want_yes else rng.choice([v for v in range(10) if v != d.value])
        where = "" if len(scene.digits) == 1 else f" on the {d.side}"
        question = f"Is the handwritten digit{where} a {value}?"
        return _yn(task, question, want_yes, 1 + (where != ""), 1, str(d.value))
    if task == "ocr":
        present = {w.text for w in scene.words}
        text = rng.choice(sorted(present)) if want_yes else rng.choice([w for w in WORDS if w not in present])
        return _yn(
            task, f'Does the image contain the text "{text}"?', want_yes, 1, 1, " ".join(sorted(present))
        )
    if task == "chart":
        b = rng.choice(scene.bars)
        value = b.value if want_yes else rng.choice([v for v in range(1, 10) if v != b.value])
        return _yn(task, f"Is the value of bar {b.label} equal to {value}?", want_yes, 1, 1, str(b.value))
    return None
