"""Checks that a rendered plot shows data, not an empty canvas or the report's "no data" placeholder: pixels and
blobs of the colours the plotting code draws its data in (axes, text and grid are black, grey or white)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# matplotlib's default cycle (C0, C1, C2, C3): hist series, loss-curve stages, scatter points and fit lines.
TAB_BLUE, TAB_ORANGE, TAB_GREEN, TAB_RED = (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)


def colour_mask(png: str | Path, rgb: tuple[int, int, int], tolerance: int = 30) -> np.ndarray:
    """Boolean (H, W) mask of the pixels within `tolerance` (per channel) of `rgb`."""
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return (np.abs(pixels - np.array(rgb, dtype=np.int16)) <= tolerance).all(axis=-1)


def colour_pixels(png: str | Path, rgb: tuple[int, int, int], tolerance: int = 30) -> int:
    """How many pixels of the image are drawn in `rgb`."""
    return int(colour_mask(png, rgb, tolerance).sum())


def colour_blobs(png: str | Path, rgb: tuple[int, int, int], tolerance: int = 30, min_pixels: int = 4) -> int:
    """Connected regions (4-neighbour) of `rgb` with at least `min_pixels` pixels: scatter points, bars."""
    mask = colour_mask(png, rgb, tolerance)
    seen = np.zeros_like(mask)
    blobs = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        stack, size = [start], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        blobs += size >= min_pixels
    return blobs
