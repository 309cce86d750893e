"""Scene sampling and rendering dispatched on the scene kind (shapes, digits, text, chart)."""

from __future__ import annotations

import io
import random

from PIL import Image

from sailvl.synth.charts import render_chart, sample_chart_scene
from sailvl.synth.digits import render_digits, sample_digits_scene
from sailvl.synth.scenes import DEFAULT_SCENES, Scene, SceneOptions, render_shapes, sample_shapes_scene
from sailvl.synth.text_ocr import render_text, sample_text_scene

KINDS = ("shapes", "digits", "text", "chart")


def sample_scene(
    rng: random.Random,
    kind: str,
    digit_split: str = "train",
    at_least_two: bool = False,
    options: SceneOptions = DEFAULT_SCENES,
) -> Scene:
    """A random scene of `kind`; `at_least_two` asks for two or more objects (relations need a pair),
    `options` sets the number and scale of shapes and the placement jitter of digits."""
    if kind == "shapes":
        low = min(2 if at_least_two else 1, options.max_objects)
        return sample_shapes_scene(rng, low, options.max_objects, options.object_scale)
    if kind == "digits":
        return sample_digits_scene(rng, digit_split, 2 if at_least_two else 1, options.digit_jitter)
    if kind == "text":
        return sample_text_scene(rng, min_lines=2 if at_least_two else 1)
    if kind == "chart":
        return sample_chart_scene(rng)
    raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")


def render_scene(scene: Scene, size: int = 112) -> Image.Image:
    """Draw a scene as an RGB image of `size` x `size` pixels (any size >= 56 works; 112, 224, 448 tested)."""
    renderers = {"shapes": render_shapes, "digits": render_digits, "text": render_text, "chart": render_chart}
    return renderers[scene.kind](scene, size)


def png_bytes(img: Image.Image) -> bytes:
    """PNG encoding with fixed settings and no metadata, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
