"""Tiling: grid choice, row-major tiles, thumbnail, MSAC, normalisation; checked against transformers' GotOcr2."""

import numpy as np
import pytest
import torch
from PIL import Image

from sailvl.config.constants import IMAGENET_MEAN, IMAGENET_STD
from sailvl.data import tiling

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def random_sizes(n: int, seed: int) -> list[tuple[int, int]]:
    """Random (width, height) with aspect ratios from 1:12 to 12:1 and sides 16..900 px."""
    rng = np.random.default_rng(seed)
    sizes = []
    for _ in range(n):
        aspect = float(np.exp(rng.uniform(np.log(1 / 12), np.log(12))))
        long_side = int(rng.integers(40, 900))
        width, height = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
        sizes.append((max(16, int(width)), max(16, int(height))))
    # Exact ratio ties (2:1 at several areas) exercise the larger-grid rule.
    return sizes + [(224, 112), (448, 224), (896, 448), (112, 112), (224, 224), (336, 112), (100, 300)]


def quadrants(side: int) -> Image.Image:
    """A square image: red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    image = Image.new("RGB", (side, side))
    half = side // 2
    for colour, box in [
        (RED, (0, 0, half, half)),
        (GREEN, (half, 0, side, half)),
        (BLUE, (0, half, half, side)),
        (YELLOW, (half, half, side, side)),
    ]:
        image.paste(colour, box)
    return image


def pixel(tile: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return tile.getpixel((x, y))


def close(rgb, expected, tol=8) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, expected, strict=True))


def test_candidate_grids_order_and_range():
    assert tiling.candidate_grids(1, 4) == [(1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (1, 4), (2, 2), (4, 1)]
    assert all(2 <= c * r <= 6 for c, r in tiling.candidate_grids(2, 6))
    with pytest.raises(ValueError):
        tiling.candidate_grids(3, 2)


@pytest.mark.parametrize("max_tiles", [1, 6, 12])
def test_grid_matches_transformers(max_tiles):
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

    for min_tiles in sorted({1, min(2, max_tiles)}):
        for width, height in random_sizes(80, seed=max_tiles):
            expected = get_optimal_tiled_canvas((height, width), (448, 448), min_tiles, max_tiles)
            ours = tiling.choose_grid(width, height, 448, min_tiles, max_tiles)
            assert ours == tuple(expected), (width, height, min_tiles)


def test_tie_rule_hand_worked():
    # 2:1 images: (2,1), (4,2), (6,3) are all exact; the larger one wins only while area > half its pixels.
    assert tiling.choose_grid(224, 112, 112, 1, 12) == (2, 1)  # 25088 <= 0.5*112^2*8
    assert tiling.choose_grid(448, 224, 112, 1, 12) == (4, 2)  # 100352 > 50176 but <= 112896 for (6,3)
    assert tiling.choose_grid(112, 112, 112, 1, 4) == (1, 1)
    assert tiling.choose_grid(224, 224, 112, 1, 4) == (2, 2)
    assert tiling.choose_grid(1000, 10, 112, 1, 6) == (6, 1)


@pytest.mark.parametrize("max_tiles", [1, 6, 12])
def test_pixels_match_transformers(max_tiles):
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    reference = GotOcr2ImageProcessorPil(
        crop_to_patches=True,
        size={"height": 56, "width": 56},
        min_patches=1,
        max_patches=max_tiles,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    rng = np.random.default_rng(100 + max_tiles)
    for width, height in random_sizes(50, seed=10 + max_tiles):
        width, height = max(8, width // 3), max(8, height // 3)  # keep the test fast; tiles are 56 px
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        expected = reference(images=image, return_tensors="pt")
        tiles = tiling.tile_image(image, 56, 1, max_tiles, use_thumbnail=True)
        ours = tiling.normalize(tiles)
        assert int(expected["num_patches"][0]) == len(tiles), (width, height)
        torch.testing.assert_close(ours, expected["pixel_values"], atol=1e-5, rtol=0)


def test_tiles_are_row_major_with_thumbnail_last():
    tiles = tiling.tile_image(quadrants(224), 112, 1, 4)
    assert len(tiles) == 5  # grid (2, 2) + thumbnail
    for tile, colour in zip(tiles[:4], [RED, GREEN, BLUE, YELLOW], strict=True):
        assert tile.size == (112, 112)
        assert close(pixel(tile, 56, 56), colour)
    thumb = tiles[4]
    assert close(pixel(thumb, 20, 20), RED) and close(pixel(thumb, 90, 20), GREEN)
    assert close(pixel(thumb, 20, 90), BLUE) and close(pixel(thumb, 90, 90), YELLOW)


def test_thumbnail_only_with_several_tiles():
    small = Image.new("RGB", (100, 90), RED)
    assert len(tiling.tile_image(small, 112, 1, 4)) == 1  # one tile: no thumbnail
    wide = Image.new("RGB", (224, 112), RED)
    wide.paste(BLUE, (112, 0, 224, 112))
    tiles = tiling.tile_image(wide, 112, 1, 4)
    assert len(tiles) == 3  # (2, 1) + thumbnail
    assert close(pixel(tiles[0], 56, 56), RED) and close(pixel(tiles[1], 56, 56), BLUE)
    assert close(pixel(tiles[2], 10, 56), RED) and close(pixel(tiles[2], 100, 56), BLUE)
    assert len(tiling.tile_image(wide, 112, 1, 4, use_thumbnail=False)) == 2


def test_msac_grids_exclude_divisors_of_first_grid():
    assert tiling.msac_grids((2, 2), 1, 4) == [(1, 3), (3, 1), (1, 4), (4, 1)]
    assert tiling.msac_grids((2, 1), 1, 4) == [(1, 2), (1, 3), (3, 1), (1, 4), (2, 2), (4, 1)]
    assert (1, 1) not in tiling.msac_grids((1, 1), 1, 4)


def test_msac_hand_worked_quadrants():
    # First pass (2, 2); second pass among grids not dividing (2, 2): (1, 3) is closest to 1:1.
    tiles = tiling.msac_tiles(quadrants(224), 112, 1, 4)
    assert len(tiles) == 4 + 3 + 1
    for tile, colour in zip(tiles[:4], [RED, GREEN, BLUE, YELLOW], strict=True):
        assert close(pixel(tile, 56, 56), colour)
    top, middle, bottom = tiles[4:7]  # the image resized to 112 x 336, cut in three rows
    assert close(pixel(top, 20, 20), RED) and close(pixel(top, 90, 20), GREEN)
    assert close(pixel(middle, 20, 20), RED) and close(pixel(middle, 20, 100), BLUE)
    assert close(pixel(bottom, 20, 100), BLUE) and close(pixel(bottom, 90, 100), YELLOW)
    assert close(pixel(tiles[7], 20, 20), RED) and close(pixel(tiles[7], 90, 90), YELLOW)  # thumbnail


def test_msac_single_tile_first_pass():
    # 100 x 100 stays one tile (area too small for 2x2); the second pass then picks (2, 2).
    tiles = tiling.msac_tiles(Image.new("RGB", (100, 100), GREEN), 112, 1, 4)
    assert len(tiles) == 1 + 4 + 1
    # max_tiles 1: every candidate divides (1, 1), so there is no second pass and no thumbnail.
    assert len(tiling.msac_tiles(Image.new("RGB", (100, 100), GREEN), 112, 1, 1)) == 1


def test_normalize_imagenet():
    white = Image.new("RGB", (8, 8), (255, 255, 255))
    black = Image.new("RGB", (8, 8), (0, 0, 0))
    values = tiling.normalize([white, black])
    assert values.shape == (2, 3, 8, 8) and values.dtype == torch.float32
    for c in range(3):
        assert values[0, c, 0, 0].item() == pytest.approx((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], abs=1e-6)
        assert values[1, c, 3, 3].item() == pytest.approx(-IMAGENET_MEAN[c] / IMAGENET_STD[c], abs=1e-6)
