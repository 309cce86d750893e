"""Question-answer pairs from scene ground truth, tagged with task type, difficulty (1-3) and reasoning steps."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sailvl.synth.captions import relation
from sailvl.synth.scenes import COLOURS, SHAPES, Scene, ShapeObject, location_phrase, location_prepositional
from sailvl.synth.text_ocr import WORDS

TASKS = ("colour", "shape", "count", "position", "digit", "ocr", "chart", "caption")
LOCATIONS = tuple(location_phrase(r, c) for r in range(3) for c in range(3))
SHORT_SUFFIX = "Answer the question using a single word or phrase."
MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."
YESNO_SUFFIX = "Please answer yes or no."


@dataclass(frozen=True)
class QA:
    """One question about a scene; `choices` is the answer space that MCQ distractors are drawn from; `seen` (yes/no
    questions) is what the image shows of the attribute asked about ("pink square" for "Is there a pink circle?")."""

    task: str
    question: str
    answer: str
    difficulty: int
    steps: int
    choices: tuple[str, ...] = ()
    seen: str = ""


def numbers(lo: int, hi: int) -> tuple[str, ...]:
    return tuple(str(k) for k in range(lo, hi + 1))


def colourless_ref(o: ShapeObject, objs: tuple[ShapeObject, ...]) -> str:
    """A unique description of `o` that does not name its colour."""
    if len(objs) == 1:
        return "the shape"
    if sum(p.shape == o.shape for p in objs) == 1:
        return f"the {o.shape}"
    return f"the shape {location_prepositional(o.row, o.col)}"


def shapeless_ref(o: ShapeObject, objs: tuple[ShapeObject, ...]) -> str:
    """A unique description of `o` that does not name its shape."""
    if len(objs) == 1:
        return "the shape"
    if sum(p.colour == o.colour for p in objs) == 1:
        return f"the {o.colour} object"
    return f"the shape {location_prepositional(o.row, o.col)}"


def _unique_relation(objs, rng) -> tuple[ShapeObject, str, ShapeObject] | None:
    """(target, relation, reference) where the target is the only object in that relation to the reference."""
    triples = []
    for ref in objs:
        for rel in ("to the left of", "to the right of", "above", "below"):
            hits = [o for o in objs if o is not ref and relation_holds(o, rel, ref)]
            if len(hits) == 1:
                triples.append((hits[0], rel, ref))
    return rng.choice(triples) if triples else None


def relation_holds(o: ShapeObject, rel: str, ref: ShapeObject) -> bool:
    return {
        "to the left of": o.col < ref.col,
        "to the right of": o.col > ref.col,
        "above": o.row < ref.row,
        "below": o.row > ref.row,
    }[rel]


def qa_colour(scene: Scene, rng: random.Random) -> QA | None:
    objs = scene.objects
    triple = _unique_relation(objs, rng) if len(objs) > 1 and rng.random() < 0.35 else None
    if triple:
        o, rel, ref = triple
        return QA("colour", f"What colour is the shape {rel} the {ref.name}?", o.colour, 2, 2, tuple(COLOURS))
    o = rng.choice(objs)
    q = rng.choice(["What colour is {}?", "What is the colour of {}?"]).format(colourless_ref(o, objs))
    return QA("colour", q, o.colour, 1, 1, tuple(COLOURS))


def qa_shape(scene: Scene, rng: random.Random) -> QA | None:
    objs = scene.objects
    triple = _unique_relation(objs, rng) if len(objs) > 1 and rng.random() < 0.35 else None
    if triple:
        o, rel, ref = triple
        return QA("shape", f"What shape is {rel} the {ref.name}?", o.shape, 2, 2, SHAPES)
    o = rng.choice(objs)
    q = rng.choice(["What shape is {}?", "Which shape is {}?"]).format(shapeless_ref(o, objs))
    return QA("shape", q, o.shape, 1, 1, SHAPES)


def qa_count(scene: Scene, rng: random.Random) -> QA | None:
    objs = scene.objects
    mode = rng.choice(["all", "colour", "shape", "relation"])
    if mode == "relation" and len(objs) > 1:
        ref = rng.choice(objs)
        rel = rng.choice(["to the left of", "to the right of", "above", "below"])
        colour = rng.choice([o.colour for o in objs if o is not ref] + list(COLOURS)[:2])
        k = sum(o.colour == colour and relation_holds(o, rel, ref) for o in objs if o is not ref)
        return QA("count", f"How many {colour} shapes are {rel} the {ref.name}?", str(k), 3, 3, numbers(0, 5))
    if mode == "colour":
        colour = rng.choice([o.colour for o in objs] + [rng.choice(list(COLOURS))])
        k = sum(o.colour == colour for o in objs)
        return QA("count", f"How many {colour} shapes are there?", str(k), 2, 2, numbers(0, 5))
    if mode == "shape":
        shape = rng.choice([o.shape for o in objs] + [rng.choice(SHAPES)])
        k = sum(o.shape == shape for o in objs)
        return QA("count", f"How many {shape}s are in the image?", str(k), 2, 2, numbers(0, 5))
    q = rng.choice(["How many shapes are there?", "How many objects are in the image?"])
    return QA("count", q, str(len(objs)), 2, 1, numbers(1, 6))


def qa_position(scene: Scene, rng: random.Random) -> QA | None:
    objs = scene.objects
    level = rng.choice([1, 2, 3]) if len(objs) > 1 else 1
    if level == 1:
        o = rng.choice(objs)
        return QA("position", f"Where in the image is the {o.name}?", o.location, 1, 1, LOCATIONS)
    a, b = rng.sample(objs, 2)
    if level == 2:
        if a.col != b.col:
            q, ans = (
                f"Is the {a.name} to the left or to the right of the {b.name}?",
                relation(a, b).split()[-2],
            )
        else:
            q, ans = f"Is the {a.name} above or below the {b.name}?", relation(a, b)
        return QA("position", q, ans, 2, 2, ("left", "right", "above", "below"))
    rel = rng.choice(["to the left of", "to the right of", "above", "below"])
    k = sum(relation_holds(o, rel, b) for o in objs if o is not b)
    return QA("position", f"How many shapes are {rel} the {b.name}?", str(k), 3, 3, numbers(0, 5))


def qa_digit(scene: Scene, rng: random.Random) -> QA | None:
    digits = scene.digits
    if len(digits) == 1:
        q = rng.choice(["What digit is written in the image?", "Which handwritten digit is shown?"])
        return QA("digit", q, str(digits[0].value), 1, 1, numbers(0, 9))
    left, right = digits
    level = rng.choice([2, 2, 3])
    if level == 3:
        q = "What is the sum of the two handwritten digits?"
        return QA("digit", q, str(left.value + right.value), 3, 3, numbers(0, 18))
    d = rng.choice(digits)
    return QA("digit", f"What is the digit on the {d.side}?", str(d.value), 2, 2, numbers(0, 9))


def _text_choices(text: str) -> tuple[str, ...]:
    if text.isdigit():
        pool = {str(max(0, int(text) + d)) for d in (-10, -1, 1, 10, 100, 7)} - {text}
        return tuple(sorted(pool)) + (text,)
    return tuple(w for w in WORDS if w != text) + (text,)


def qa_ocr(scene: Scene, rng: random.Random) -> QA | None:
    words = scene.words
    if len(words) == 1:
        w = words[0]
        if rng.random() < 0.2:
            unit = "digits does the number" if w.text.isdigit() else "letters does the word"
            return QA("ocr", f"How many {unit} in the image have?", str(len(w.text)), 3, 2, numbers(1, 9))
        kind = "number" if w.text.isdigit() else "word"
        q = rng.choice([f"What {kind} is written in the image?", "What does the text in the image say?"])
        return QA("ocr", q, w.text, 1, 1, _text_choices(w.text))
    w = rng.choice(words)
    if rng.random() < 0.25:
        unit = "digits" if w.text.isdigit() else "letters"
        return QA("ocr", f"How many {unit} are on the {w.line} line?", str(len(w.text)), 3, 3, numbers(1, 9))
    return QA("ocr", f"What is written on the {w.line} line?", w.text, 2, 2, _text_choices(w.text))


def qa_chart(scene: Scene, rng: random.Random) -> QA | None:
    bars = scene.bars
    labels = tuple(b.label for b in bars)
    level = rng.choice([1, 1, 2, 3])
    values = [b.value for b in bars]
    if level == 2 and values.count(max(values)) == 1:
        top = max(bars, key=lambda b: b.value)
        return QA("chart", "Which bar is the tallest?", top.label, 2, 2, labels)
    if level == 3:
        if rng.random() < 0.5 and values.count(min(values)) == 1 and values.count(max(values)) == 1:
            q = "What is the difference between the values of the tallest and the shortest bar?"
            return QA("chart", q, str(max(values) - min(values)), 3, 3, numbers(0, 8))
        a, b = rng.sample(bars, 2)
        q = f"What is the sum of the values of bars {a.label} and {b.label}?"
        return QA("chart", q, str(a.value + b.value), 3, 3, numbers(2, 18))
    b = rng.choice(bars)
    if rng.random() < 0.25:
        return QA("chart", f"What colour is bar {b.label}?", b.colour, 1, 1, tuple(COLOURS))
    return QA("chart", f"What is the value of bar {b.label}?", str(b.value), 1, 1, numbers(1, 9))


QA_BUILDERS: dict[str, Callable[[Scene, random.Random], QA | None]] = {
    "colour": qa_colour,
    "shape": qa_shape,
    "count": qa_count,
    "position": qa_position,
    "digit": qa_digit,
    "ocr": qa_ocr,
    "chart": qa_chart,
}
# The scene kind each task asks about ("caption" fits every kind).
TASK_KIND = {
    "colour": "shapes",
    "shape": "shapes",
    "count": "shapes",
    "position": "shapes",
    "digit": "digits",
    "ocr": "text",
    "chart": "chart",
}


def make_qa(scene: Scene, task: str, rng: random.Random) -> QA | None:
    """A QA of `task` about `scene`, or None when the scene cannot support that task."""
    if TASK_KIND.get(task) != scene.kind:
        return None
    return QA_BUILDERS[task](scene, rng)
