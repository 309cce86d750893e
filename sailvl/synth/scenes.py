"""Ground truth of synthetic scenes: vocabulary, scene dataclasses, backgrounds and shape drawing."""

from __future__ import annotations

import functools
import importlib.util
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

# Colour names with their base RGB; rendering jitters each channel a little so the names stay unambiguous.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "orange": (245, 140, 20),
    "yellow": (235, 205, 25),
    "green": (34, 160, 60),
    "blue": (35, 85, 225),
    "purple": (135, 55, 185),
    "pink": (245, 120, 185),
    "black": (25, 25, 25),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = ("small", "large")
# Half-widths of the two sizes, as a fraction of the image side (a grid cell is 1/3 of the side).
SIZE_RADIUS = {"small": 0.085, "large": 0.14}
PLAIN_BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "light gray": (226, 226, 226),
    "pale blue": (214, 230, 246),
    "pale yellow": (250, 244, 212),
    "pale green": (222, 242, 222),
}
# Photos shipped inside scikit-image, faded and used as backgrounds (the description goes into captions).
PHOTO_BACKGROUNDS = {
    "chelsea.png": "a cat",
    "coffee.png": "a cup of coffee",
    "astronaut.png": "an astronaut",
    "brick.png": "a brick wall",
    "grass.png": "grass",
    "rocket.jpg": "a rocket",
}
ROW_NAMES = ("top", "middle", "bottom")
COL_NAMES = ("left", "middle", "right")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass(frozen=True)
class ShapeObject:
    """One coloured shape; `cx, cy, radius` are fractions of the image side, `row, col` its 3x3 grid cell."""

    colour: str
    shape: str
    size: str
    row: int
    col: int
    cx: float
    cy: float
    rgb: tuple[int, int, int]
    scale: float = 1.0

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def location(self) -> str:
        """Location phrase of the grid cell, e.g. 'top left', 'center', 'bottom'."""
        return location_phrase(self.row, self.col)


@dataclass(frozen=True)
class DigitMark:
    """A handwritten digit from scikit-learn's `load_digits` (`index` into that set) drawn in `colour` ink."""

    value: int
    index: int
    colour: str
    cx: float
    cy: float
    height: float
    side: str  # "left", "right" or "center"


@dataclass(frozen=True)
class WordMark:
    """A rendered word or number; `cy` is the vertical centre as a fraction of the image side."""

    text: str
    colour: str
    font: str
    cy: float
    line: str  # "top", "bottom" or "center"


@dataclass(frozen=True)
class Bar:
    """One bar of a bar chart: its label letter, integer value (1-9) and colour name."""

    label: str
    value: int
    colour: str


@dataclass(frozen=True)
class Scene:
    """Ground truth of one image: `kind` is shapes, digits, text or chart; only its own list is filled."""

    kind: str
    background: str
    objects: tuple[ShapeObject, ...] = ()
    digits: tuple[DigitMark, ...] = ()
    words: tuple[WordMark, ...] = ()
    bars: tuple[Bar, ...] = ()


def location_phrase(row: int, col: int) -> str:
    """Name of a 3x3 grid cell: 'top left', 'top', 'left', 'center', ..."""
    if row == 1 and col == 1:
        return "center"
    if row == 1:
        return COL_NAMES[col]
    if col == 1:
        return ROW_NAMES[row]
    return f"{ROW_NAMES[row]} {COL_NAMES[col]}"


def location_prepositional(row: int, col: int) -> str:
    """'in the top left corner', 'at the top', 'in the center', 'on the left', ..."""
    if row == 1 and col == 1:
        return "in the center"
    if row == 1:
        return f"on the {COL_NAMES[col]}"
    if col == 1:
        return f"at the {ROW_NAMES[row]}"
    return f"in the {ROW_NAMES[row]} {COL_NAMES[col]} corner"


def jitter_rgb(rng: random.Random, rgb: tuple[int, int, int], amount: int = 14) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def sample_background(rng: random.Random, photo_prob: float = 0.15) -> str:
    """A background name: a plain colour, or 'photo:<file>' for a faded photo shipped in scikit-image."""
    if photo_prob > 0 and rng.random() < photo_prob and _photo_dir() is not None:
        return "photo:" + rng.choice(sorted(PHOTO_BACKGROUNDS))
    return rng.choice(sorted(PLAIN_BACKGROUNDS))


def background_phrase(background: str) -> str:
    """Caption words for a background: 'pale blue background', 'faded photo of a cat'."""
    if background.startswith("photo:"):
        return f"faded photo of {PHOTO_BACKGROUNDS[background[6:]]}"
    return f"{background} background"


@dataclass(frozen=True)
class SceneOptions:
    """How scenes are drawn. Shapes scenes: at most `max_objects` (1-5) shapes, each `object_scale` times its
    nominal size. Digits scenes: `digit_jitter` (0-1) scales the random offset and size spread of each digit
    (0: every digit at its nominal place and size, which a tiny ViT learns to read several times faster)."""

    max_objects: int = 5
    object_scale: float = 1.0
    digit_jitter: float = 1.0


DEFAULT_SCENES = SceneOptions()


def sample_shapes_scene(
    rng: random.Random, min_objects: int = 1, max_objects: int = 5, object_scale: float = 1.0
) -> Scene:
    """Place 1-5 shapes in distinct cells of a 3x3 grid; colour+shape pairs are unique within a scene.

    With `object_scale` > 1 shapes may outgrow their cell (meant for one-object scenes); they stay inside
    the image."""
    weights = [4, 3, 3, 2, 2][min_objects - 1 : max_objects]
    n = rng.choices(range(min_objects, max_objects + 1), weights=weights)[0]
    cells = rng.sample(range(9), n)
    pairs = rng.sample([(c, s) for c in COLOURS for s in SHAPES], n)
    objects = []
    for cell, (colour, shape) in zip(cells, pairs, strict=True):
        row, col = divmod(cell, 3)
        size = rng.choice(SIZES)
        radius = SIZE_RADIUS[size] * object_scale
        slack = max(0.0, 1 / 6 - radius)
        cx = min(1 - radius, max(radius, (col + 0.5) / 3 + rng.uniform(-slack, slack) * 0.8))
        cy = min(1 - radius, max(radius, (row + 0.5) / 3 + rng.uniform(-slack, slack) * 0.8))
        rgb = jitter_rgb(rng, COLOURS[colour])
        objects.append(ShapeObject(colour, shape, size, row, col, cx, cy, rgb, object_scale))
    objects.sort(key=lambda o: (o.row, o.col))
    return Scene(kind="shapes", background=sample_background(rng), objects=tuple(objects))


def new_canvas(background: str, size: int) -> Image.Image:
    """An RGB canvas of `size` x `size` pixels filled with a plain colour or a faded photo."""
    if background.startswith("photo:"):
        return _faded_photo(background[6:], size).copy()
    return Image.new("RGB", (size, size), PLAIN_BACKGROUNDS[background])


def draw_shape(draw: ImageDraw.ImageDraw, obj: ShapeObject, size: int) -> None:
    """Draw one shape onto a `size`-pixel canvas."""
    r = SIZE_RADIUS[obj.size] * obj.scale * size
    cx, cy = obj.cx * size, obj.cy * size
    if obj.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=obj.rgb)
    elif obj.shape == "square":
        s = r * 0.88  # a square of the same half-width looks larger than the circle
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=obj.rgb)
    elif obj.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=obj.rgb)
    elif obj.shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=obj.rgb)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")


def render_shapes(scene: Scene, size: int) -> Image.Image:
    img = new_canvas(scene.background, size)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        draw_shape(draw, obj, size)
    return img


@functools.lru_cache(maxsize=1)
def _photo_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    return path if all((path / name).exists() for name in PHOTO_BACKGROUNDS) else None


@functools.lru_cache(maxsize=32)
def _faded_photo(name: str, size: int) -> Image.Image:
    # Faded to a quarter contrast so object colours stay recognisable on top of it.
    with Image.open(_photo_dir() / name) as photo:
        photo = photo.convert("RGB")
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        photo = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return Image.blend(photo, Image.new("RGB", (size, size), (255, 255, 255)), 0.72)
