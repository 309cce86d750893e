"""Decoding one image reference (path or bytes) into an RGB PIL image, with reasons for bad records."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sailvl.errors import SailvlError

ImageRef = str | Path | bytes

# Composite transparent images on white: document scans and charts with alpha are drawn on paper.
_BACKGROUND = (255, 255, 255)
# Only bother with reduced-scale JPEG decoding when it saves at least one halving.
_DRAFT_MIN_FACTOR = 2


class BadRecord(SailvlError):
    """A record that cannot be used; `reason` is a short snake_case tag counted by the loaders."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def load_image(ref: ImageRef, max_side: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """Decode `ref` (a file path, or the encoded bytes) into an RGB image, EXIF orientation applied.

    `max_side` (pixels) is the long side the caller needs at most: a JPEG whose long side is at least
    twice that is decoded at a reduced DCT scale (`Image.draft`), which keeps the long side >= `max_side`.
    `max_pixels` (width x height) refuses larger images from their header, before any pixel is decoded.
    Raises `BadRecord` with reason `image_missing`, `image_empty`, `image_corrupt` or `image_too_large`.
    """
    name = "<bytes>" if isinstance(ref, bytes | bytearray) else str(ref)
    if isinstance(ref, bytes | bytearray):
        if len(ref) == 0:
            raise BadRecord("image_empty", "image bytes are empty")
        source = io.BytesIO(ref)
    else:
        path = Path(ref)
        if not path.is_file():
            raise BadRecord("image_missing", f"image file {name} does not exist")
        if path.stat().st_size == 0:
            raise BadRecord("image_empty", f"image file {name} is empty")
        source = path
    try:
        with Image.open(source) as opened:
            if max_pixels is not None and opened.width * opened.height > max_pixels:
                raise BadRecord(
                    "image_too_large",
                    f"image {name} is {opened.width}x{opened.height}, over the limit of {max_pixels} pixels",
                )
            if max_side is not None and opened.format == "JPEG":
                _draft_jpeg(opened, max_side)
            opened.load()
            image = ImageOps.exif_transpose(opened)
            image = to_rgb(image)
    except Image.DecompressionBombError as err:
        raise BadRecord("image_too_large", f"image {name} is too large to decode: {err}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadRecord("image_corrupt", f"image {name} cannot be decoded: {err}") from err
    if image.width == 0 or image.height == 0:
        raise BadRecord("image_empty", f"image {name} has zero size")
    return image


def _draft_jpeg(image: Image.Image, max_side: int) -> None:
    """Ask libjpeg for the smallest power-of-two reduction that keeps the long side >= `max_side`."""
    width, height = image.size
    long_side = max(width, height)
    if max_side <= 0 or long_side < _DRAFT_MIN_FACTOR * max_side:
        return
    # draft() keeps both sides >= the requested box, so ask for the proportional box of that long side.
    scale = max_side / long_side
    box = (max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale))))
    image.draft("RGB", box)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; alpha is composited on white, 16-bit data is scaled to 8 bits."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, _BACKGROUND)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Map integer or float grey levels to 0..255 (16-bit data is divided by 257, floats in 0..1 scaled)."""
    values = values.astype(np.float64)
    peak = float(values.max()) if values.size else 0.0
    if peak > 255:
        values = values / 257.0
    elif peak <= 1.0 and values.dtype.kind == "f":
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
