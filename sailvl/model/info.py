"""`sailvl model info`: parameter counts and image-token geometry of a preset or a model directory."""

from __future__ import annotations

import json
from pathlib import Path

from sailvl.errors import SailvlError
from sailvl.model.build import build_from_config
from sailvl.model.params import count_parameters
from sailvl.model.presets import (
    PRESETS,
    config_from_dict,
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
        config_file = path / "config.json"
        if not config_file.is_file():
            raise SailvlError(f"model directory {path} has no config.json")
        data = json.loads(config_file.read_text())
        if data.get("model_type") != "internvl":
            raise SailvlError(
                f"{path} holds a {data.get('model_type')!r} model, expected an 'internvl' model"
            )
        config = config_from_dict(data)
    else:
        raise SailvlError(
            f"{preset_or_dir!r} is neither a model directory nor a preset; known presets: {', '.join(sorted(PRESETS))}"
        )
    counts = count_parameters(build_from_config(config, device="meta"))
    return counts | {
        "image_tokens_per_tile": image_tokens_per_tile(config),
        "tile_size": tile_size_of(config),
    }
