"""Handwritten-digit scenes from scikit-learn's bundled `load_digits`, with a fixed train/test split by index."""

from __future__ import annotations

import functools
import random

import numpy as np
from PIL import Image

from sailvl.synth.scenes import COLOURS, DigitMark, Scene, new_canvas

# Ink colours dark enough to read on the plain backgrounds.
INK_COLOURS = ("black", "blue", "red", "green", "purple")
# Every fifth image of load_digits (index % 5 == 0) is held out for benchmarks; the rest trains.
TEST_EVERY = 5


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32) / 16.0, data.target.astype(np.int64)


def split_indices(split: str) -> list[int]:
    """Indices into `load_digits` for `split` ('train' or 'test'); the test split is every fifth image."""
    if split not in ("train", "test"):
        raise ValueError(f"digit split must be 'train' or 'test', got {split!r}")
    n = len(_digits()[1])
    return [i for i in range(n) if (i % TEST_EVERY == 0) == (split == "test")]


def sample_digits_scene(rng: random.Random, split: str, min_digits: int = 1, jitter: float = 1.0) -> Scene:
    """One centred digit or two side-by-side digits from the given split, in coloured ink on a plain canvas.

    `jitter` (0-1) scales each digit's random offset and its size spread around the middle of the range; the
    random draws are the same for every `jitter`, so 1.0 gives the original scenes."""
    images, targets = _digits()
    pool = split_indices(split)
    n = rng.choice([1, 1, 2]) if min_digits < 2 else 2
    background = rng.choice(["white", "white", "pale yellow", "light gray"])
    marks = []
    for k in range(n):
        index = rng.choice(pool)
        low, high = (0.55, 0.75) if n == 1 else (0.4, 0.48)
        height = (low + high) / 2 + jitter * (rng.uniform(low, high) - (low + high) / 2)
        if n == 1:
            cx, side = 0.5 + jitter * rng.uniform(-0.1, 0.1), "center"
        else:
            cx, side = (0.27, "left") if k == 0 else (0.73, "right")
            cx += jitter * rng.uniform(-0.03, 0.03)
        cy = 0.5 + jitter * rng.uniform(-0.1, 0.1)
        colour = rng.choice(INK_COLOURS)
        marks.append(DigitMark(int(targets[index]), index, colour, cx, cy, height, side))
    return Scene(kind="digits", background=background, digits=tuple(marks))


def render_digits(scene: Scene, size: int) -> Image.Image:
    """Upsample each 8x8 digit with bicubic smoothing and use it as the alpha mask of its ink colour."""
    images, _ = _digits()
    img = new_canvas(scene.background, size)
    for mark in scene.digits:
        side = max(8, round(mark.height * size))
        alpha = Image.fromarray((images[mark.index] * 255).astype(np.uint8))
        alpha = alpha.resize((side, side), Image.BICUBIC)
        ink = Image.new("RGB", (side, side), COLOURS[mark.colour])
        img.paste(ink, (round(mark.cx * size - side / 2), round(mark.cy * size - side / 2)), alpha)
    return img
