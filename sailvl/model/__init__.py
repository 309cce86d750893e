"""Model: builds transformers' InternVLForConditionalGeneration from presets or parts; loading, freezing, conversion."""

from sailvl.model.build import add_special_tokens, build_from_config, build_from_parts, build_model
from sailvl.model.convert import FORMATS, convert_checkpoint
from sailvl.model.loading import load_model, save_model
from sailvl.model.params import count_parameters, module_alias, parameter_groups, set_trainable
from sailvl.model.presets import PRESETS, get_preset_config, image_tokens_per_tile, tile_size_of
from sailvl.model.vision_fixes import apply_vision_fixes

__all__ = [
    "FORMATS",
    "PRESETS",
    "add_special_tokens",
    "apply_vision_fixes",
    "build_from_config",
    "build_from_parts",
    "build_model",
    "convert_checkpoint",
    "count_parameters",
    "get_preset_config",
    "image_tokens_per_tile",
    "load_model",
    "module_alias",
    "parameter_groups",
    "save_model",
    "set_trainable",
    "tile_size_of",
]
