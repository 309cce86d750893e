"""`sailvl model info`: parameter counts and image-token geometry of a preset or a model directory."""

from __future__ import annotations

from pathlib import Path

from sailvl.errors import SailvlError
from sailvl.model.build import build_from_config
from sailvl.model.loading import read_model_config
from sailvl.model.lora import adapter_parameter_count, inject_lora, lora_config, lora_targets
from sailvl.model.params import count_parameters, set_trainable
from sailvl.model.presets import (
    PRESETS,
    get_preset_config,
    image_tokens_per_tile,
    tile_size_of,
)


def model_info(
    preset_or_dir: str,
    trainable: list[str] | None = None,
    lora_targets_globs: list[str] | None = None,
    lora_r: int = 8,
) -> dict[str, int]:
    """`{"vision","projector","llm","total"}` parameter counts (elements), `image_tokens_per_tile` and
    `tile_size` (pixels). The model is built on the meta device, so no weight memory is allocated.

    With `trainable` globs and/or `lora_targets_globs` (rank `lora_r`), as a recipe stage sets them, also
    `trainable` (what that stage would train) and, with LoRA, `adapters`; the counts then include the adapters.
    """
    path = Path(preset_or_dir)
    if preset_or_dir in PRESETS:
        config = get_preset_config(preset_or_dir)
    elif path.is_dir():
        config = read_model_config(path)
    else:
        raise SailvlError(
            f"{preset_or_dir!r} is neither a model directory nor a preset; known presets: {', '.join(sorted(PRESETS))}"
        )
    model = build_from_config(config, device="meta")
    extra = {}
    if lora_targets_globs:
        inject_lora(model, lora_config(lora_targets(model, lora_targets_globs), lora_r, 2 * lora_r, 0.0), 0)
        extra["adapters"] = adapter_parameter_count(model)
    if trainable is not None or lora_targets_globs:
        rows = set_trainable(model, trainable or [])
        extra["trainable"] = sum(row["trainable"] for row in rows)
    return (
        count_parameters(model)
        | extra
        | {"image_tokens_per_tile": image_tokens_per_tile(config), "tile_size": tile_size_of(config)}
    )
