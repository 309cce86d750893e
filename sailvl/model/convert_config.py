"""config.json translation between the released SAIL-VL remote-code layout and transformers' InternVL."""

from __future__ import annotations

import copy

from sailvl.errors import SailvlError
from sailvl.model.families import Family, family_of_hf, family_of_remote
from sailvl.model.loading import layout_model_type
from sailvl.model.presets import config_from_dict

_VIT_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# Entries of the released llm_config that describe how the authors ran it, not the model: remote-code and
# architecture names, the attention kernel (flash_attention_2 fails where flash-attn is absent) and the
# dtype (the converted weights keep their own; `save_pretrained` records it).
_RUNTIME_TEXT_FIELDS = (
    "auto_map",
    "architectures",
    "attn_implementation",
    "_attn_implementation",
    "torch_dtype",
    "dtype",
    "_name_or_path",
)
# Shape-defining LLM fields a fine-tune could change; the rest of a stored release llm_config is kept as is.
_LLM_SHAPE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "tie_word_embeddings",
)
_CAUSAL_LM = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def _scalar(value):
    return value[0] if isinstance(value, list | tuple) else value


def _hf_vision(family: Family, vision: dict, tile: int) -> dict:
    common = {k: vision[k] for k in _VIT_FIELDS + ("hidden_act",) if k in vision}
    common |= {"image_size": tile, "patch_size": _scalar(vision["patch_size"])}
    common["num_channels"] = vision.get("num_channels", 3)
    if family.key_layout == "internvit":
        return common | {
            "model_type": "internvl_vision",
            "attention_bias": vision.get("qkv_bias", True),
            "use_qk_norm": vision.get("qk_normalization", False),
            "norm_type": vision.get("norm_type", "layer_norm"),
            "layer_norm_eps": vision.get("layer_norm_eps", 1e-6),
            "layer_scale_init_value": vision.get("initializer_factor", 0.1),
            "use_mean_pooling": True,  # InternViT has no final norm
        }
    return common | {
        "model_type": "aimv2_vision_model",
        "rms_norm_eps": vision.get("rms_norm_eps", 1e-5),
        "qkv_bias": vision.get("qkv_bias", False),
        "mlp_bias": vision.get("use_bias", False),
        "use_head": False,
    }


def remote_vision_to_hf(vision: dict, family: Family, tile: int | None = None) -> dict:
    """The HF vision config dict (InternVLVisionConfig / Aimv2VisionConfig fields) of a released tower config."""
    return _hf_vision(family, vision, tile or _scalar(vision["image_size"]))


def remote_config_to_hf(config: dict, image_token_id: int | None) -> tuple[Family, dict]:
    """(family, HF `InternVLConfig` dict) of a released config.json dict.

    `image_token_id` is `<IMG_CONTEXT>`'s id in the release's tokenizer (the released configs leave it to the
    tokenizer); without a tokenizer the config's own `img_context_token_id` is used, else this raises."""
    family = family_of_remote(config)
    vision, text = dict(config["vision_config"]), dict(config["llm_config"])
    token_id = image_token_id if image_token_id is not None else config.get("img_context_token_id")
    if token_id is None:
        raise SailvlError(
            "the checkpoint has no tokenizer defining <IMG_CONTEXT> and no img_context_token_id"
        )
    tile = int(config.get("force_image_size") or _scalar(vision["image_size"]))
    hf_vision = _hf_vision(family, vision, tile)
    for key in _RUNTIME_TEXT_FIELDS:
        text.pop(key, None)
    ratio = config.get("downsample_ratio", 0.5)
    tie = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
    hf = config_from_dict(
        dict(
            vision_config=hf_vision,
            text_config=text | {"tie_word_embeddings": tie},
            image_token_id=int(token_id),
            image_seq_length=int((tile // hf_vision["patch_size"]) ** 2 * ratio**2),
            downsample_ratio=ratio,
            vision_feature_layer=config.get("select_layer", -1),
            vision_feature_select_strategy="default" if family.key_layout == "internvit" else "full",
            tie_word_embeddings=tie,
        )
    )
    out = hf.to_dict()
    out["architectures"] = ["InternVLForConditionalGeneration"]
    out["model_type"] = layout_model_type(hf_vision["model_type"])
    return family, out


def _remote_vision(family: Family, vision: dict) -> dict:
    common = {k: vision[k] for k in _VIT_FIELDS + ("hidden_act",) if k in vision}
    common |= {"image_size": _scalar(vision["image_size"]), "patch_size": _scalar(vision["patch_size"])}
    common |= {"num_channels": vision.get("num_channels", 3), "architectures": [family.vision_architecture]}
    common["model_type"] = family.vision_type
    if family.key_layout == "internvit":
        return common | {
            "qkv_bias": vision.get("attention_bias", True),
            "qk_normalization": vision.get("use_qk_norm", False),
            "norm_type": vision.get("norm_type", "layer_norm"),
            "layer_norm_eps": vision.get("layer_norm_eps", 1e-6),
            "initializer_factor": vision.get("layer_scale_init_value", 0.1),
            "drop_path_rate": 0.0,
            "use_flash_attn": False,
        }
    return common | {
        "rms_norm_eps": vision.get("rms_norm_eps", 1e-5),
        "qkv_bias": vision.get("qkv_bias", False),
        "use_bias": vision.get("mlp_bias", False),
    }


def _legacy_rope(text: dict) -> dict:
    """transformers 5 writes `rope_parameters`; the releases' code (transformers 4.x) reads `rope_theta` and
    `rope_scaling`, and without them would fall back to its default base (10000 instead of 1e6)."""
    params = text.pop("rope_parameters", None)
    if not isinstance(params, dict):
        return text
    scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    text["rope_theta"] = params.get("rope_theta", text.get("rope_theta"))
    text["rope_scaling"] = None if scaling.get("rope_type", "default") == "default" else scaling
    return text


def _fresh_remote(family: Family, config: dict, tiles: dict) -> dict:
    vision, text = config["vision_config"], _legacy_rope(dict(config["text_config"]))
    text.setdefault("architectures", [_CAUSAL_LM.get(text["model_type"], "AutoModelForCausalLM")])
    remote_vision = _remote_vision(family, vision)
    return {
        "architectures": list(family.architectures),
        "auto_map": dict(family.auto_map),
        "model_type": family.model_type,
        "vision_config": remote_vision,
        "llm_config": text,
        "downsample_ratio": config.get("downsample_ratio", 0.5),
        "select_layer": config.get("vision_feature_layer", -1),
        "force_image_size": remote_vision["image_size"],
        "ps_version": "v2",
        "template": tiles.get("template") or family.template,
        "img_context_token_id": config.get("image_token_id"),
        "tie_word_embeddings": config.get("tie_word_embeddings", False),
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "pad2square": False,
        "use_thumbnail": tiles.get("use_thumbnail", True),
        "dynamic_image_size": True,
        "min_dynamic_patch": tiles.get("min_tiles", 1),
        "max_dynamic_patch": tiles.get("max_tiles", 12),
    }


def _set_if_changed(target: dict, key: str, value) -> None:
    if target.get(key) != value:
        target[key] = value


def _update_release(release: dict, fresh: dict, tiles: dict) -> dict:
    """The stored release config with only what the HF model says differently: shapes, layer, template."""
    out = copy.deepcopy(release)
    for key in _VIT_FIELDS + ("image_size", "patch_size"):
        _set_if_changed(out["vision_config"], key, fresh["vision_config"][key])
    for key in _LLM_SHAPE_FIELDS:
        if key in fresh["llm_config"]:
            _set_if_changed(out["llm_config"], key, fresh["llm_config"][key])
    for key in ("downsample_ratio", "select_layer", "tie_word_embeddings"):
        _set_if_changed(out, key, fresh[key])
    if "img_context_token_id" in out:
        _set_if_changed(out, "img_context_token_id", fresh["img_context_token_id"])
    if tiles.get("template"):
        _set_if_changed(out, "template", tiles["template"])
    return out


def hf_config_to_remote(
    config: dict, release: dict | None = None, tiles: dict | None = None
) -> tuple[Family, dict]:
    """(family, released config.json dict) of an HF InternVL config dict.

    `release`: the release's own config.json stored at conversion (`RELEASE_FILE`); it is written back with
    only shape / layer / template changes, so released -> hf -> released is exact. Without it the family's
    names are used. `tiles`: the processor's `template`, `min_tiles`, `max_tiles`, `use_thumbnail`."""
    tiles = tiles or {}
    family = family_of_hf(config)
    fresh = _fresh_remote(family, config, tiles)
    if release is None:
        return family, fresh
    stored = family_of_remote(release)
    if stored.name != family.name:
        raise SailvlError(f"the stored release config is {stored.name} but the model is {family.name}")
    return family, _update_release(release, fresh, tiles)
