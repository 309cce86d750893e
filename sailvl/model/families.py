"""The released SAIL-VL families: how each one's remote-code checkpoint is named, and recognising them.

Sources (see the README section "Fine-tune a released SAIL-VL model" for what each fact was read from):
SAIL-VL2 / -Thinking ship `configuration_sailvl.SAILVLConfig` + `modeling_sailvl.SAILVLModel` (model_type
`sailvl`), a `sailvit` tower (AIMv2 code, `SAILViTModel`), a Qwen3 LLM and the `univl-chat` template;
SAIL-VL 1.5 / 1.6 ship `configuration_sailvl.SailVLConfig` + `SailVLModel` (model_type `internvl_chat`) with
an `aimv2` tower and Qwen2.5; SAIL-VL (1.0) the same classes with InternViT (`intern_vit_6b`) and Qwen2.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sailvl.config.constants import CHAT_TEMPLATE_NAMES, SAILVL_CHAT, UNIVL_CHAT
from sailvl.errors import SailvlError

_SAILVL_CLASSES = {
    "AutoConfig": "configuration_sailvl.SailVLConfig",
    "AutoModel": "modeling_sailvl.SailVLModel",
    "AutoModelForCausalLM": "modeling_sailvl.SailVLModel",
}


@dataclass(frozen=True)
class Family:
    """One released family: its remote-code names and what sailvl maps it to.

    `key_layout` names the weight-name rules in `convert_keys` ("internvit" or "aimv2": SAILViT keeps AIMv2's
    names). `stores_tied_head`: the release writes `language_model.lm_head.weight` even with tied embeddings."""

    name: str
    releases: str
    vision_type: str
    vision_architecture: str
    key_layout: str
    llm_types: tuple[str, ...]
    model_type: str
    architectures: tuple[str, ...]
    auto_map: dict = field(default_factory=dict)
    template: str = SAILVL_CHAT
    stores_tied_head: bool = False


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="sail-vl",
            releases="SAIL-VL-2B, SAIL-VL-8B",
            vision_type="intern_vit_6b",
            vision_architecture="InternVisionModel",
            key_layout="internvit",
            llm_types=("qwen2",),
            model_type="internvl_chat",
            architectures=("SailVLModel",),
            auto_map=_SAILVL_CLASSES,
        ),
        Family(
            name="sail-vl-1.5",
            releases="SAIL-VL-1d5-2B / 8B, SAIL-VL-1d6-8B",
            vision_type="aimv2",
            vision_architecture="AIMv2Model",
            key_layout="aimv2",
            llm_types=("qwen2",),
            model_type="internvl_chat",
            architectures=("SailVLModel",),
            auto_map=_SAILVL_CLASSES,
        ),
        Family(
            name="sail-vl2",
            releases="SAIL-VL2-2B / 8B and -Thinking",
            vision_type="sailvit",
            vision_architecture="SAILViTModel",
            key_layout="aimv2",
            llm_types=("qwen3",),
            model_type="sailvl",
            architectures=("SAILVLModel",),
            auto_map={
                "AutoConfig": "configuration_sailvl.SAILVLConfig",
                "AutoModel": "modeling_sailvl.SAILVLModel",
            },
            template=UNIVL_CHAT,
            stores_tied_head=True,
        ),
    )
}
# Architecture names the remote configs of a family may carry (InternVL-chat's own for the InternViT releases).
_KNOWN_ARCHITECTURES = {"InternVLChatModel", "SailVLModel", "SAILVLModel"}
_PIXEL_SHUFFLE_VERSIONS = ("v2",)  # transformers' InternVL implements InternVL's pixel shuffle "v2" only
# Remote fields whose non-default value changes the forward in a way the conversion cannot carry.
_MUST_BE_OFF = ("use_backbone_lora", "use_llm_lora")


def _known_vision_types() -> str:
    return ", ".join(f"{f.vision_type!r} ({f.name})" for f in FAMILIES.values())


def family_of_remote(config: dict) -> Family:
    """The family of a released config.json dict; an unknown tower, LLM or setting raises naming it."""
    vision = config.get("vision_config")
    llm = config.get("llm_config")
    if not isinstance(vision, dict) or not isinstance(llm, dict):
        raise SailvlError("a released SAIL-VL config.json needs 'vision_config' and 'llm_config' objects")
    vision_type = vision.get("model_type")
    family = next((f for f in FAMILIES.values() if f.vision_type == vision_type), None)
    if family is None:
        raise SailvlError(
            f"vision model type {vision_type!r} is not a released SAIL-VL tower; known: {_known_vision_types()}"
        )
    if llm.get("model_type") not in family.llm_types:
        raise SailvlError(
            f"llm_config.model_type {llm.get('model_type')!r} does not fit {family.name} "
            f"(expected {', '.join(family.llm_types)})"
        )
    architectures = set(config.get("architectures") or [])
    if architectures and not architectures & _KNOWN_ARCHITECTURES:
        raise SailvlError(
            f"architectures {sorted(architectures)} is not a SAIL-VL model; "
            f"expected one of {sorted(_KNOWN_ARCHITECTURES)}"
        )
    _check_fields(config)
    return family


def _check_fields(config: dict) -> None:
    version = config.get("ps_version", "v2")
    if version not in _PIXEL_SHUFFLE_VERSIONS:
        raise SailvlError(
            f"ps_version {version!r} is not supported; sailvl's InternVL forward implements 'v2'"
        )
    for name in _MUST_BE_OFF:
        if config.get(name):
            raise SailvlError(f"{name}={config[name]!r}: merge the LoRA weights before converting")
    template = config.get("template", SAILVL_CHAT)
    if template not in CHAT_TEMPLATE_NAMES:
        raise SailvlError(
            f"template {template!r} is not known; sailvl renders {', '.join(CHAT_TEMPLATE_NAMES)}"
        )
    if not isinstance(config.get("select_layer", -1), int):
        raise SailvlError(f"select_layer {config['select_layer']!r} must be an integer layer index")


def family_of_hf(config: dict) -> Family:
    """The family a converted (HF layout) config belongs to: by vision tower and LLM type."""
    vision_type = (config.get("vision_config") or {}).get("model_type", "internvl_vision")
    text_type = (config.get("text_config") or {}).get("model_type")
    layout = "internvit" if vision_type == "internvl_vision" else "aimv2"
    if vision_type not in ("internvl_vision", "aimv2_vision_model"):
        raise SailvlError(f"vision model type {vision_type!r} has no released SAIL-VL layout")
    for family in FAMILIES.values():
        if family.key_layout == layout and text_type in family.llm_types:
            return family
    raise SailvlError(f"no released SAIL-VL family pairs a {vision_type} tower with a {text_type!r} LLM")


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise SailvlError(f"unknown SAIL-VL family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]
