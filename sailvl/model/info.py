"""`sailvl model info`: parameter counts and image-token geometry of a preset or a model directory."""

from __future__ import annotations

from pathlib import Path

from sailvl.errors import SailvlError
from sailvl.model.build import build_from_config
from sailvl.model.loading import read_model_config
from sailvl.model.params import count_parameters
from sailvl.model.presets import (
    PRESETS,
    get_preset_config,
    image_tokens_per_tile,
    tile_size_of,
)


def model_info(preset_or_dir: str) -> dict[str, int]:
    """`{"vision","projector","llm","total"}` parameter counts (elements), `image_tokens_per_tile` and
    `tile_size` (pixels). The model is built on the meta device, so no weight memory is allocated."""
    path = Path(preset_or_dir)
    if preset_or_dir in PRESETS:
        config = get_preset_config(preset_or_dir)
    elif path.is_dir():
        config = read_model_config(path)
    else:
        raise SailvlError(
            f"{preset_or_dir!r} is neither a model directory nor a preset; known presets: {', '.join(sorted(PRESETS))}"
        )
    counts = count_parameters(build_from_config(config, device="meta"))
    return counts | {
        "image_tokens_per_tile": image_tokens_per_tile(config),
        "tile_size": tile_size_of(config),
    }
