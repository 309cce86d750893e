"""Bar-chart scenes: 3-4 coloured bars with letter labels and their integer values written above them."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from sailvl.synth.scenes import COLOURS, Bar, Scene, new_canvas
from sailvl.synth.text_ocr import draw_text_centered, load_font

# Letters that cannot be mistaken for the option letters A-D of multiple-choice questions.
BAR_LABELS = "KLMNPRSTVXYZ"
BAR_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink")
MAX_VALUE = 9


def sample_chart_scene(rng: random.Random) -> Scene:
    """3 or 4 bars with distinct consecutive labels, distinct colours and values 1-9."""
    n = rng.choice([3, 4])
    start = rng.randint(0, len(BAR_LABELS) - n)
    colours = rng.sample(BAR_COLOURS, n)
    bars = tuple(Bar(BAR_LABELS[start + k], rng.randint(1, MAX_VALUE), colours[k]) for k in range(n))
    return Scene(kind="chart", background="white", bars=bars)


def render_chart(scene: Scene, size: int) -> Image.Image:
    img = new_canvas(scene.background, size)
    draw = ImageDraw.Draw(img)
    n = len(scene.bars)
    left, right, baseline, top = 0.08 * size, 0.92 * size, 0.82 * size, 0.2 * size
    slot = (right - left) / n
    font = load_font("sans-bold", max(7, round(0.11 * size)))
    for k, bar in enumerate(scene.bars):
        x0 = left + k * slot + slot * 0.18
        x1 = left + (k + 1) * slot - slot * 0.18
        y = baseline - (baseline - top) * bar.value / MAX_VALUE
        draw.rectangle([x0, y, x1, baseline], fill=COLOURS[bar.colour])
        draw_text_centered(draw, str(bar.value), font, (x0 + x1) / 2, y - 0.07 * size, (0, 0, 0))
        draw_text_centered(draw, bar.label, font, (x0 + x1) / 2, baseline + 0.09 * size, (0, 0, 0))
    draw.line([left, baseline, right, baseline], fill=(0, 0, 0), width=max(1, size // 112))
    return img
