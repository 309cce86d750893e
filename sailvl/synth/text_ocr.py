"""OCR scenes: large rendered words and numbers in DejaVu fonts (Pillow's default font as a fallback)."""

from __future__ import annotations

import functools
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from sailvl.synth.scenes import COLOURS, Scene, WordMark, new_canvas

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
# Font key -> (file, caption words).
FONTS = {
    "sans": ("DejaVuSans.ttf", "sans-serif"),
    "sans-bold": ("DejaVuSans-Bold.ttf", "bold sans-serif"),
    "serif": ("DejaVuSerif.ttf", "serif"),
    "serif-bold": ("DejaVuSerif-Bold.ttf", "bold serif"),
    "mono": ("DejaVuSansMono.ttf", "monospace"),
}
WORDS = (
    "apple", "river", "cloud", "green", "house", "music", "table", "light", "stone", "water",
    "bread", "chair", "dream", "field", "glass", "heart", "lemon", "money", "night", "ocean",
    "paper", "queen", "radio", "smile", "tiger", "train", "voice", "whale", "zebra", "piano",
    "cat", "dog", "sun", "map", "key", "box", "cup", "hat", "pen", "sky",
    "open", "stop", "exit", "sale", "cafe", "park", "book", "moon", "fish", "bird",
    "garden", "window", "orange", "yellow", "purple", "rocket", "planet", "forest", "bridge", "castle",
)  # fmt: skip
INK_COLOURS = ("black", "blue", "red", "green", "purple")


def sample_text(rng: random.Random) -> str:
    """A word from WORDS (two thirds of the time) or a number with 1-4 digits."""
    if rng.random() < 2 / 3:
        return rng.choice(WORDS)
    return str(rng.randint(0, 9999))


def sample_text_scene(rng: random.Random, min_lines: int = 1) -> Scene:
    """One centred line, or two lines (top and bottom) of distinct texts."""
    n = rng.choice([1, 1, 2]) if min_lines < 2 else 2
    texts: list[str] = []
    while len(texts) < n:
        text = sample_text(rng)
        if text not in texts:
            texts.append(text)
    background = rng.choice(["white", "white", "pale yellow", "pale blue", "light gray"])
    font = rng.choice(sorted(FONTS))
    marks = []
    for k, text in enumerate(texts):
        if n == 1:
            cy, line = 0.5 + rng.uniform(-0.12, 0.12), "center"
        else:
            cy, line = (0.3, "top") if k == 0 else (0.7, "bottom")
        marks.append(WordMark(text, rng.choice(INK_COLOURS), font, cy, line))
    return Scene(kind="text", background=background, words=tuple(marks))


@functools.lru_cache(maxsize=256)
def load_font(font: str, pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font of `pixels` height; Pillow's built-in font when the DejaVu file is missing."""
    path = FONT_DIR / FONTS[font][0]
    if path.exists():
        return ImageFont.truetype(str(path), pixels)
    return ImageFont.load_default(size=pixels)


def fit_font(font: str, text: str, max_width: float, max_height: float) -> ImageFont.ImageFont:
    """The largest font (in whole pixels) whose rendering of `text` fits the box."""
    pixels = max(6, int(max_height))
    while pixels > 6:
        left, top, right, bottom = load_font(font, pixels).getbbox(text)
        if right - left <= max_width and bottom - top <= max_height:
            break
        pixels = max(6, min(pixels - 1, int(pixels * max_width / max(1, right - left))))
    return load_font(font, pixels)


def draw_text_centered(draw: ImageDraw.ImageDraw, text: str, font, cx: float, cy: float, fill) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text((cx - (left + right) / 2, cy - (top + bottom) / 2), text, font=font, fill=fill)


def render_text(scene: Scene, size: int) -> Image.Image:
    img = new_canvas(scene.background, size)
    draw = ImageDraw.Draw(img)
    line_height = 0.3 if len(scene.words) == 1 else 0.22
    for mark in scene.words:
        font = fit_font(mark.font, mark.text, 0.88 * size, line_height * size)
        draw_text_centered(draw, mark.text, font, size / 2, mark.cy * size, COLOURS[mark.colour])
    return img
