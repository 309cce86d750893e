"""Captions from scene ground truth: gold detailed captions (templated with variety) and noisy web-like alt-text."""

from __future__ import annotations

import random

from sailvl.synth.scenes import (
    COLOURS,
    NUMBER_WORDS,
    SHAPES,
    Scene,
    ShapeObject,
    background_phrase,
    location_prepositional,
)
from sailvl.synth.text_ocr import FONTS, WORDS


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def plural(noun: str, n: int) -> str:
    return noun if n == 1 else noun + "s"


def join_words(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def relation(a: ShapeObject, b: ShapeObject) -> str | None:
    """Spatial relation of `a` to `b` from their grid cells ('to the left of', 'above', ...), None if same cell."""
    if a.col != b.col:
        return "to the left of" if a.col < b.col else "to the right of"
    if a.row != b.row:
        return "above" if a.row < b.row else "below"
    return None


def _shapes_sentences(scene: Scene, rng: random.Random) -> list[str]:
    objs, bg = scene.objects, background_phrase(scene.background)
    n = len(objs)
    if n == 1:
        o = objs[0]
        opener = rng.choice(
            [
                f"The image shows a single {o.size} {o.name} {location_prepositional(o.row, o.col)} of a {bg}.",
                f"A {o.size} {o.name} sits {location_prepositional(o.row, o.col)} of a {bg}.",
                f"There is one shape, a {o.size} {o.name}, {location_prepositional(o.row, o.col)} of a {bg}.",
            ]
        )
        return [opener]
    sentences = [
        rng.choice(
            [
                f"The image shows {NUMBER_WORDS[n]} shapes on a {bg}.",
                f"There are {NUMBER_WORDS[n]} coloured shapes on a {bg}.",
                f"{NUMBER_WORDS[n].capitalize()} simple shapes are drawn on a {bg}.",
            ]
        )
    ]
    for o in objs:
        where = location_prepositional(o.row, o.col)
        sentences.append(
            rng.choice(
                [
                    f"A {o.size} {o.name} is {where}.",
                    f"{where[0].upper() + where[1:]} there is a {o.size} {o.name}.",
                    f"The {o.name} is {o.size} and placed {where}.",
                ]
            )
        )
    a, b = rng.sample(objs, 2)
    rel = relation(a, b)
    if rel:
        sentences.append(f"The {a.name} is {rel} the {b.name}.")
    colour_counts = {c: sum(o.colour == c for o in objs) for c in COLOURS}
    repeated = [c for c, k in colour_counts.items() if k > 1]
    if repeated:
        c = repeated[0]
        sentences.append(f"{NUMBER_WORDS[colour_counts[c]].capitalize()} of the shapes are {c}.")
    return sentences


def _digits_sentences(scene: Scene, rng: random.Random) -> list[str]:
    bg = background_phrase(scene.background)
    if len(scene.digits) == 1:
        d = scene.digits[0]
        return [
            rng.choice(
                [
                    f"A handwritten digit {d.value} is written in {d.colour} ink on a {bg}.",
                    f"The image shows the handwritten number {NUMBER_WORDS[d.value]} ({d.value}) in {d.colour} on a {bg}.",
                ]
            ),
            "The digit is blurry, like a low-resolution scan.",
        ]
    left, right = scene.digits
    return [
        f"Two handwritten digits are written side by side on a {bg}.",
        f"On the left is a {left.colour} {left.value} and on the right a {right.colour} {right.value}.",
        f"Together they read {left.value}{right.value}.",
    ]


def _text_sentences(scene: Scene, rng: random.Random) -> list[str]:
    bg = background_phrase(scene.background)
    style = FONTS[scene.words[0].font][1]
    if len(scene.words) == 1:
        w = scene.words[0]
        return [
            rng.choice(
                [
                    f'The {"number" if w.text.isdigit() else "word"} "{w.text}" is written in large {w.colour} {style} letters on a {bg}.',
                    f'Large {w.colour} {style} text on a {bg} reads "{w.text}".',
                ]
            )
        ]
    top, bottom = scene.words
    return [
        f"Two lines of {style} text are written on a {bg}.",
        f'The top line reads "{top.text}" in {top.colour}.',
        f'The bottom line reads "{bottom.text}" in {bottom.colour}.',
    ]


def _chart_sentences(scene: Scene, rng: random.Random) -> list[str]:
    bars = scene.bars
    labels = join_words([b.label for b in bars])
    sentences = [
        rng.choice(
            [
                f"A bar chart with {NUMBER_WORDS[len(bars)]} bars labeled {labels}.",
                f"The image is a simple bar chart of {NUMBER_WORDS[len(bars)]} categories, {labels}.",
            ]
        )
    ]
    sentences.append(
        join_words([f"bar {b.label} is {b.colour} with value {b.value}" for b in bars]).capitalize() + "."
    )
    top = max(bars, key=lambda b: b.value)
    if sum(b.value == top.value for b in bars) == 1:
        sentences.append(f"The tallest bar is {top.label} with a value of {top.value}.")
    return sentences


def caption_sentences(scene: Scene, rng: random.Random) -> list[str]:
    """The sentences of the detailed caption; together they state every attribute of the scene."""
    builders = {
        "shapes": _shapes_sentences,
        "digits": _digits_sentences,
        "text": _text_sentences,
        "chart": _chart_sentences,
    }
    return builders[scene.kind](scene, rng)


def detailed_caption(scene: Scene, rng: random.Random) -> str:
    """The gold reference caption: complete and correct, wording varied by `rng`."""
    return " ".join(caption_sentences(scene, rng))


def alt_text(scene: Scene, rng: random.Random, wrong_prob: float = 0.3) -> tuple[str, str | None]:
    """Short web-like alt-text, often incomplete; with `wrong_prob` one attribute is wrong.

    Returns (text, wrong_attribute) where wrong_attribute is None when the alt-text is correct."""
    wrong = rng.random() < wrong_prob
    if scene.kind == "shapes":
        o = rng.choice(scene.objects)
        colour, shape = o.colour, o.shape
        attribute = None
        if wrong:
            attribute = rng.choice(["colour", "shape"])
            if attribute == "colour":
                colour = rng.choice([c for c in COLOURS if c != o.colour])
            else:
                shape = rng.choice([s for s in SHAPES if s != o.shape])
        text = rng.choice(
            [f"{colour} {shape}", f"{colour} {shape} and other shapes", f"{shape} clipart", "colorful shapes"]
        )
        if text == "colorful shapes" or (text.endswith("clipart") and attribute == "colour"):
            attribute = None  # the chosen template does not mention the corrupted attribute
        return text, attribute
    if scene.kind == "digits":
        value = "".join(str(d.value) for d in scene.digits)
        if wrong:
            value = str((int(value) + rng.randint(1, 8)) % (10 ** len(value))).zfill(len(value))
        return rng.choice([f"handwritten {value}", f"number {value} scan", f"digit {value}"]), (
            "digit" if wrong else None
        )
    if scene.kind == "text":
        text = scene.words[0].text
        if wrong:
            text = rng.choice([w for w in WORDS if w != text])
        return rng.choice([f"{text} sign", f'text "{text}"', f"{text} typography"]), (
            "ocr" if wrong else None
        )
    return rng.choice(["bar chart", "graph", "statistics chart"]), None
