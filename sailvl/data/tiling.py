"""Dynamic-resolution tiling (InternVL grid choice, thumbnail, MSAC second pass) and normalisation."""

import numpy as np
import torch
from PIL import Image

from sailvl.config.constants import IMAGENET_MEAN, IMAGENET_STD

Grid = tuple[int, int]  # (cols, rows)


def candidate_grids(min_tiles: int, max_tiles: int) -> list[Grid]:
    """All (cols, rows) with `min_tiles <= cols*rows <= max_tiles`, by tile count, then by cols.

    The order decides exact ties in `choose_grid`; it is the order of transformers' GotOcr2 processor
    (InternVL's original code iterates a Python set, whose order within one tile count is arbitrary).
    """
    if min_tiles < 1 or max_tiles < min_tiles:
        raise ValueError(
            f"need 1 <= min_tiles <= max_tiles, got min_tiles={min_tiles}, max_tiles={max_tiles}"
        )
    grids = [
        (cols, rows)
        for cols in range(1, max_tiles + 1)
        for rows in range(1, max_tiles + 1)
        if min_tiles <= cols * rows <= max_tiles
    ]
    return sorted(grids, key=lambda grid: grid[0] * grid[1])


def choose_grid(
    width: int, height: int, tile: int, min_tiles: int, max_tiles: int, grids: list[Grid] | None = None
) -> Grid:
    """The grid whose aspect ratio (cols/rows) is closest to `width/height` (pixels).

    On an exact tie the later (larger) grid wins when the image area exceeds half the grid's pixel area
    (`0.5 * tile^2 * cols * rows`), so small images are not blown up. `grids` restricts the candidates
    (MSAC); by default they are `candidate_grids(min_tiles, max_tiles)`.
    """
    if grids is None:
        grids = candidate_grids(min_tiles, max_tiles)
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


def crop_grid(image: Image.Image, grid: Grid, tile: int) -> list[Image.Image]:
    """Resize `image` (bicubic) to `tile*cols x tile*rows` pixels and cut it into row-major tiles."""
    cols, rows = grid
    resized = image.resize((tile * cols, tile * rows), Image.Resampling.BICUBIC)
    return [
        resized.crop((col * tile, row * tile, (col + 1) * tile, (row + 1) * tile))
        for row in range(rows)
        for col in range(cols)
    ]


def thumbnail(image: Image.Image, tile: int) -> Image.Image:
    """The whole image squeezed (bicubic, aspect ratio not kept) into one `tile x tile` tile."""
    return image.resize((tile, tile), Image.Resampling.BICUBIC)


def tile_image(
    image: Image.Image, tile: int, min_tiles: int = 1, max_tiles: int = 12, use_thumbnail: bool = True
) -> list[Image.Image]:
    """Row-major tiles of the best grid, plus a thumbnail when there is more than one tile."""
    grid = choose_grid(image.width, image.height, tile, min_tiles, max_tiles)
    tiles = crop_grid(image, grid, tile)
    if use_thumbnail and len(tiles) > 1:
        tiles.append(thumbnail(image, tile))
    return tiles


def msac_grids(first: Grid, min_tiles: int, max_tiles: int) -> list[Grid]:
    """Candidates of the MSAC second pass: grids that do not evenly divide the first grid.

    A grid (c, r) divides (C, R) when C % c == 0 and R % r == 0; its tiles would only be unions of
    first-pass tiles, adding no new scale. (vLLM's H2OVL port uses the stricter "neither divides".)
    """
    cols, rows = first
    return [(c, r) for c, r in candidate_grids(min_tiles, max_tiles) if cols % c != 0 or rows % r != 0]


def msac_tiles(
    image: Image.Image, tile: int, min_tiles: int = 1, max_tiles: int = 12, use_thumbnail: bool = True
) -> list[Image.Image]:
    """Multi-scale adaptive cropping (inference only): first-pass tiles, second-pass tiles, thumbnail.

    The second pass picks, by the same rule as `choose_grid`, among `msac_grids(first grid)`; when no
    grid qualifies (e.g. `max_tiles == 1`) only the first pass is used.
    """
    first = choose_grid(image.width, image.height, tile, min_tiles, max_tiles)
    tiles = crop_grid(image, first, tile)
    second_candidates = msac_grids(first, min_tiles, max_tiles)
    if second_candidates:
        second = choose_grid(image.width, image.height, tile, min_tiles, max_tiles, grids=second_candidates)
        tiles += crop_grid(image, second, tile)
    if use_thumbnail and len(tiles) > 1:
        tiles.append(thumbnail(image, tile))
    return tiles


def stack_tiles(tiles: list[Image.Image]) -> torch.Tensor:
    """Stack RGB tiles into a uint8 tensor `[n, 3, T, T]` (what crosses worker processes: 4x less than float32)."""
    if not tiles:
        raise ValueError("normalize needs at least one tile")
    pixels = np.stack([np.asarray(t.convert("RGB"), dtype=np.uint8) for t in tiles])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def normalize_pixels(
    pixels: torch.Tensor,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 `[n, 3, T, T]` -> `dtype`, on the tensor's device: scaled to 0..1 in float32, then (x - mean) / std."""
    values = pixels.to(torch.float32) / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    return ((values - mean_t) / std_t).to(dtype)


def normalize(
    tiles: list[Image.Image], mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """Stack RGB tiles into a float32 tensor `[n, 3, T, T]`: pixels scaled to 0..1, then (x - mean) / std."""
    return normalize_pixels(stack_tiles(tiles), mean, std)
