"""The files a processor is saved as and read from: `sailvl_processor.json`, and what transformers' InternVLProcessor
(GotOcr2ImageProcessor + tokenizer) and servers built on it (vLLM) read: `preprocessor_config.json`,
`processor_config.json`, the chat template and the named image tokens."""

import json
from pathlib import Path

from sailvl.config.constants import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMG_CONTEXT,
    IMG_END,
    IMG_START,
    RELEASE_KEY,
    SAILVL_CHAT,
)
from sailvl.errors import SailvlError

PROCESSOR_FILE = "sailvl_processor.json"
# What transformers' InternVLProcessor (GotOcr2ImageProcessor + tokenizer) and servers built on it (vLLM) read.
HF_IMAGE_PROCESSOR_FILE = "preprocessor_config.json"
HF_PROCESSOR_FILE = "processor_config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
# sailvl has no video input; InternVLProcessor still needs a video token, so an existing token stands in.
_VIDEO_TOKENS = ("<|video_pad|>", IMG_CONTEXT)
SETTINGS = (
    "tile_size",
    "patch_size",
    "downsample_ratio",
    "min_tiles",
    "max_tiles",
    "use_thumbnail",
    "system_prompt",
    "max_total_tiles",
    "template",
    "use_msac",
)


def hf_chat_template(system_prompt: str | None) -> str:
    """The sailvl-chat format for transformers' InternVLProcessor and servers built on it (vLLM).

    Same text as `encode_prompt` renders, with `<IMG_CONTEXT>` where sailvl has `<image>` (InternVLProcessor
    expands each into `<img>` + tokens + `</img>`): the default system turn, `Image-k: ` prefixes when a
    conversation has several images, no newline between turns. Content may be a string or image/text items.
    """
    system = (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n"
        + "{% raw %}"
        + system_prompt
        + "{% endraw %}"
        + "<|im_end|>{% endif %}"
        if system_prompt
        else ""
    )
    return (
        "{% set ns = namespace(total=0, k=0) %}"
        "{% for message in messages %}{% if message['content'] is not string %}"
        "{% for item in message['content'] %}{% if item['type'] == 'image' %}{% set ns.total = ns.total + 1 %}"
        "{% endif %}{% endfor %}{% endif %}{% endfor %}"
        + system
        + "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] | replace('<image>', '"
        + IMG_CONTEXT
        + "') }}{% else %}{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}{% set ns.k = ns.k + 1 %}"
        "{% if ns.total > 1 %}Image-{{ ns.k }}: {% endif %}"
        + IMG_CONTEXT
        + "\n{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
        "<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


def image_side(size) -> int:
    """A square side from an int or an [h, w] pair (transformers stores both forms)."""
    if isinstance(size, int):
        return size
    height, width = size
    if height != width:
        raise SailvlError(f"non-square vision input {height}x{width} is not supported")
    return int(height)


def name_image_tokens(config_file: Path, vocab: dict[str, int]) -> None:
    """Name the image tokens in tokenizer_config.json the way InternVLProcessor looks them up
    (`tokenizer.start_image_token`, ...), using only tokens the vocabulary already has."""
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text())
    video = next(token for token in _VIDEO_TOKENS if token in vocab or token == IMG_CONTEXT)
    config |= {
        "start_image_token": IMG_START,
        "end_image_token": IMG_END,
        "context_image_token": IMG_CONTEXT,
        "video_token": video,
    }
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def read_settings(directory: Path) -> dict:
    """Processor settings of a model directory: its `sailvl_processor.json`, else a plain transformers InternVL
    directory's `config.json` (tile and patch size, downsample ratio) and `preprocessor_config.json` (tile range)."""
    settings_path = directory / PROCESSOR_FILE
    if settings_path.is_file():
        settings = json.loads(settings_path.read_text())
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise SailvlError(f"{settings_path} has unknown keys {sorted(unknown)}")
        return settings
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise SailvlError(f"{directory} has neither {PROCESSOR_FILE} nor config.json")
    config = json.loads(config_path.read_text())
    vision = config.get("vision_config", {})
    try:
        settings = {
            "tile_size": image_side(vision["image_size"]),
            "patch_size": image_side(vision["patch_size"]),
            "downsample_ratio": float(config["downsample_ratio"]),
        }
    except KeyError as err:
        raise SailvlError(f"{config_path} lacks {err.args[0]}, needed for the image settings") from err
    return (
        settings
        | _release_settings(directory)
        | _read_hf_image_processor(directory / HF_IMAGE_PROCESSOR_FILE)
    )


def _release_settings(directory: Path) -> dict:
    """Chat format and tiling a release declares in its config.json (as shipped, or kept under RELEASE_KEY in
    a converted one): `template`, `min/max_dynamic_patch`, `use_thumbnail`. The release's preprocessor_config.json,
    read after this, has the last word on the tile count (SAIL-VL2-2B: 12 in config.json, 10 in the processor)."""
    config = json.loads((directory / "config.json").read_text())
    if isinstance(config.get(RELEASE_KEY), dict):
        config = config[RELEASE_KEY]["config"]
    elif not isinstance(config.get("llm_config"), dict):
        return {}
    settings = {"template": config.get("template", SAILVL_CHAT)}
    if config.get("dynamic_image_size", True):
        settings |= {
            "min_tiles": int(config.get("min_dynamic_patch", 1)),
            "max_tiles": int(config.get("max_dynamic_patch", 12)),
        }
    else:
        settings |= {"min_tiles": 1, "max_tiles": 1}
    if "use_thumbnail" in config:
        settings["use_thumbnail"] = bool(config["use_thumbnail"])
    return settings


def _read_hf_image_processor(path: Path) -> dict:
    """Tile range from a transformers GotOcr2 `preprocessor_config.json` or a released SAIL-VL2
    `SAILVLImageProcessor` one (`max_dynamic_patch`, `use_msac`; none: {}); a normalisation other than
    sailvl's ImageNet mean/std raises, since tiles would reach the model scaled differently."""
    if not path.is_file():
        return {}
    config = json.loads(path.read_text())
    for key, expected in (("image_mean", IMAGENET_MEAN), ("image_std", IMAGENET_STD)):
        value = config.get(key)
        if value is not None and [round(float(v), 4) for v in value] != [round(v, 4) for v in expected]:
            raise SailvlError(
                f"{path} normalises with {key} {value}; sailvl tiles with ImageNet's {list(expected)}"
            )
    if "max_dynamic_patch" in config:
        # The released processor always starts its grids at one tile and appends a thumbnail.
        return {
            "min_tiles": 1,
            "max_tiles": int(config["max_dynamic_patch"]),
            "use_msac": bool(config.get("use_msac", False)),
        }
    if not config.get("crop_to_patches", False):
        return {"min_tiles": 1, "max_tiles": 1}
    return {"min_tiles": int(config.get("min_patches", 1)), "max_tiles": int(config.get("max_patches", 12))}


_TILE_SETTINGS = ("template", "min_tiles", "max_tiles", "use_thumbnail", "use_msac")


def release_tile_settings(directory: Path) -> dict | None:
    """The chat template and tiling of a model directory's processor, for writing a released layout back
    (`sailvl convert --to sailvl-remote`); None when the directory has no processor settings to read."""
    try:
        settings = read_settings(Path(directory))
    except SailvlError:
        return None
    return {key: settings[key] for key in _TILE_SETTINGS if key in settings}
