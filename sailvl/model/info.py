"""`sailvl model info`: parameter counts and image-token geometry of a preset, a model directory or a release."""

from __future__ import annotations

import json
from pathlib import Path

from sailvl.config.constants import RELEASE_KEY
from sailvl.errors import SailvlError
from sailvl.model.build import build_from_config
from sailvl.model.convert import tokenizer_image_token_id
from sailvl.model.convert_config import remote_config_to_hf
from sailvl.model.families import Family, get_family
from sailvl.model.loading import read_model_config
from sailvl.model.lora import adapter_parameter_count, inject_lora, lora_config, lora_targets
from sailvl.model.params import count_parameters, set_trainable
from sailvl.model.presets import (
    MODEL_TYPES,
    PRESETS,
    config_from_dict,
    get_preset_config,
    image_tokens_per_tile,
    tile_size_of,
)


def _dir_config(path: Path):
    """(InternVLConfig, released family or None) of a sailvl / HF model directory or a released checkpoint."""
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raw = {}
    if raw.get("model_type") in MODEL_TYPES or not isinstance(raw.get("llm_config"), dict):
        record = raw.get(RELEASE_KEY)
        return read_model_config(path), get_family(record["family"]) if record else None
    # A released checkpoint as shipped: read through the conversion, without weights or remote code.
    family, hf = remote_config_to_hf(raw, tokenizer_image_token_id(path) or 0)
    return config_from_dict(hf), family


def _describe(config, family: Family) -> dict[str, str]:
    vision, text = config.vision_config, config.text_config
    return {
        "family": f"{family.name} ({family.releases})",
        "vision_tower": f"{family.vision_type} ({family.vision_architecture}): hidden {vision.hidden_size} x "
        f"{vision.num_hidden_layers} layers",
        "language_model": f"{text.model_type}: hidden {text.hidden_size} x {text.num_hidden_layers} layers, "
        f"vocab {text.vocab_size}",
        "select_layer": config.vision_feature_layer,
        "image_token_id": config.image_token_id,
    }


def model_info(
    preset_or_dir: str,
    trainable: list[str] | None = None,
    lora_targets_globs: list[str] | None = None,
    lora_r: int = 8,
) -> dict:
    """`{"vision","projector","llm","total"}` parameter counts (elements), `image_tokens_per_tile` and
    `tile_size` (pixels); for a released checkpoint (as shipped or converted) also its family, tower, LLM,
    select_layer and `<IMG_CONTEXT>` id. The model is built on the meta device: no weight memory is used.

    With `trainable` globs and/or `lora_targets_globs` (rank `lora_r`), as a recipe stage sets them, also
    `trainable` (what that stage would train) and, with LoRA, `adapters`; the counts then include the adapters.
    """
    path = Path(preset_or_dir)
    family = None
    if preset_or_dir in PRESETS:
        config = get_preset_config(preset_or_dir)
    elif path.is_dir():
        config, family = _dir_config(path)
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
    info = (
        count_parameters(model)
        | extra
        | {"image_tokens_per_tile": image_tokens_per_tile(config), "tile_size": tile_size_of(config)}
    )
    return info | (_describe(config, family) if family is not None else {})
