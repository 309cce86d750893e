"""Checkpoint conversion between the released SAIL-VL / InternVL-chat layout (`sailvl-remote`) and HF (`hf`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sailvl.config.constants import IMG_CONTEXT
from sailvl.errors import SailvlError
from sailvl.model.convert_keys import hf_to_remote, remote_to_hf
from sailvl.model.loading import MODEL_TYPES, layout_model_type, save_model
from sailvl.model.presets import QWEN_IMG_CONTEXT_ID, config_from_dict

FORMATS = ("sailvl-remote", "hf")
# Files that describe weights or code; everything else (tokenizer, chat template, processor) is copied.
_NOT_COPIED = {"config.json", "model.safetensors.index.json"}
_INTERNVIT_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
)
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
# The class and remote-code entry points of the released checkpoints: SAIL-VL 1.5/1.6 (AIMv2) ship
# modeling_sailvl.py / configuration_sailvl.py; InternViT ones the InternVL-chat files. sailvl writes no code:
# copy the released *.py files next to a converted checkpoint to run it with trust_remote_code.
_REMOTE_CLASSES = {
    "internvit": {
        "architectures": ["InternVLChatModel"],
        "auto_map": {
            "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
            "AutoModel": "modeling_internvl_chat.InternVLChatModel",
        },
    },
    "aimv2": {
        "architectures": ["SailVLModel"],
        "auto_map": {
            "AutoConfig": "configuration_sailvl.SailVLConfig",
            "AutoModel": "modeling_sailvl.SailVLModel",
            "AutoModelForCausalLM": "modeling_sailvl.SailVLModel",
        },
    },
}
_AIMV2_FIELDS = _INTERNVIT_FIELDS + ("rms_norm_eps", "qkv_bias", "num_channels")


def _read_state(src: Path) -> dict[str, torch.Tensor]:
    files = sorted(src.glob("*.safetensors"))
    if not files:
        raise SailvlError(f"{src} has no .safetensors weights (other formats are not read)")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                state[key] = handle.get_tensor(key)
    return state


# transformers saves InternVL in the legacy hub layout and loads both; normalise to the runtime names.
_HF_DISK_PREFIXES = (
    ("vision_tower.", "model.vision_tower."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
)


def _hf_runtime_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, tensor in state.items():
        for disk, runtime in _HF_DISK_PREFIXES:
            if key.startswith(disk):
                key = runtime + key[len(disk) :]
                break
        out[key] = tensor
    return out


def _save_hf(config: dict, state: dict[str, torch.Tensor], dst: Path) -> None:
    """Write an HF directory through transformers itself, so the file layout is exactly what it saves."""
    from transformers import InternVLForConditionalGeneration

    hf_config = config_from_dict(config)
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(hf_config)
    try:
        model.load_state_dict(state, strict=not hf_config.tie_word_embeddings, assign=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise SailvlError(f"converted weights do not fit the converted config: {detail}") from None
    if hf_config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise SailvlError(f"converted checkpoint lacks {len(missing)} weights, e.g. {missing[0]}")
    save_model(model, dst)


def _scalar(value):
    return value[0] if isinstance(value, list | tuple) else value


def _vision_kind(vision: dict) -> str:
    model_type = vision.get("model_type", "")
    if model_type in ("intern_vit_6b", "internvl_vision"):
        return "internvit"
    if model_type in ("aimv2", "aimv2_vision_model"):
        return "aimv2"
    raise SailvlError(f"vision model type {model_type!r} is not convertible; expected InternViT or AIMv2")


def hf_config_to_remote(config: dict) -> dict:
    """Translate an HF `InternVLConfig` dict into the InternVL-chat `config.json` of the released checkpoints."""
    vision, text = dict(config["vision_config"]), dict(config["text_config"])
    kind = _vision_kind(vision)
    common = {k: vision[k] for k in _INTERNVIT_FIELDS if k in vision}
    common |= {"image_size": _scalar(vision["image_size"]), "patch_size": _scalar(vision["patch_size"])}
    if kind == "internvit":
        remote_vision = common | {
            "architectures": ["InternVisionModel"],
            "model_type": "intern_vit_6b",
            "qkv_bias": vision.get("attention_bias", True),
            "qk_normalization": vision.get("use_qk_norm", False),
            "norm_type": vision.get("norm_type", "layer_norm"),
            "layer_norm_eps": vision.get("layer_norm_eps", 1e-6),
            "initializer_factor": vision.get("layer_scale_init_value", 0.1),
            "num_channels": vision.get("num_channels", 3),
            "drop_path_rate": 0.0,
            "use_flash_attn": False,
        }
    else:
        remote_vision = common | {
            "architectures": ["AIMv2Model"],
            "model_type": "aimv2",
            "rms_norm_eps": vision.get("rms_norm_eps", 1e-5),
            "qkv_bias": vision.get("qkv_bias", False),
            "use_bias": vision.get("mlp_bias", False),
            "num_channels": vision.get("num_channels", 3),
        }
    text.setdefault("architectures", [_causal_lm_arch(text["model_type"])])
    return {
        **_REMOTE_CLASSES[kind],
        "model_type": "internvl_chat",
        "vision_config": remote_vision,
        "llm_config": text,
        "downsample_ratio": config.get("downsample_ratio", 0.5),
        "select_layer": config.get("vision_feature_layer", -1),
        "force_image_size": remote_vision["image_size"],
        "ps_version": "v2",
        "template": "sailvl-chat",
        "img_context_token_id": config.get("image_token_id"),
        "tie_word_embeddings": config.get("tie_word_embeddings", False),
        "use_thumbnail": True,
        "dynamic_image_size": True,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": 12,
    }


def _causal_lm_arch(model_type: str) -> str:
    return {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}.get(model_type, "AutoModelForCausalLM")


def remote_config_to_hf(config: dict, image_token_id: int | None = None) -> dict:
    """Translate an InternVL-chat `config.json` dict into an HF `InternVLConfig` dict.

    The released configs do not record the `<IMG_CONTEXT>` id (the remote code asks the tokenizer at run
    time): `image_token_id` is that id, else the config's `img_context_token_id`, else the Qwen id."""
    vision, text = dict(config["vision_config"]), dict(config.get("llm_config") or config["text_config"])
    kind = _vision_kind(vision)
    common = {k: vision[k] for k in _INTERNVIT_FIELDS if k in vision}
    common |= {"image_size": vision["image_size"], "patch_size": vision["patch_size"]}
    if kind == "internvit":
        hf_vision = common | {
            "model_type": "internvl_vision",
            "attention_bias": vision.get("qkv_bias", True),
            "use_qk_norm": vision.get("qk_normalization", False),
            "norm_type": vision.get("norm_type", "layer_norm"),
            "layer_norm_eps": vision.get("layer_norm_eps", 1e-6),
            "layer_scale_init_value": vision.get("initializer_factor", 0.1),
            "num_channels": vision.get("num_channels", 3),
            "use_mean_pooling": True,  # InternViT has no final norm
        }
    else:
        hf_vision = common | {
            "model_type": "aimv2_vision_model",
            "rms_norm_eps": vision.get("rms_norm_eps", 1e-5),
            "qkv_bias": vision.get("qkv_bias", False),
            "mlp_bias": vision.get("use_bias", False),
            "num_channels": vision.get("num_channels", 3),
            "use_head": False,
        }
    for key in _RUNTIME_TEXT_FIELDS:
        text.pop(key, None)
    image_size, patch_size = _scalar(vision["image_size"]), _scalar(vision["patch_size"])
    ratio = config.get("downsample_ratio", 0.5)
    hf = config_from_dict(
        dict(
            vision_config=hf_vision,
            text_config=text,
            image_token_id=image_token_id or config.get("img_context_token_id") or QWEN_IMG_CONTEXT_ID,
            image_seq_length=int((image_size // patch_size) ** 2 * ratio**2),
            downsample_ratio=ratio,
            vision_feature_layer=config.get("select_layer", -1),
            vision_feature_select_strategy="default" if kind == "internvit" else "full",
            tie_word_embeddings=config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)),
        )
    )
    out = hf.to_dict()
    out["architectures"] = ["InternVLForConditionalGeneration"]
    out["model_type"] = layout_model_type(hf_vision["model_type"])
    return out


def _tokenizer_image_token_id(src: Path) -> int | None:
    """The id of `<IMG_CONTEXT>` in the tokenizer files of `src` (tokenizer_config.json's
    added_tokens_decoder or tokenizer.json's added_tokens), or None when there is no tokenizer."""
    config_file, tokenizer_file = src / "tokenizer_config.json", src / "tokenizer.json"
    if config_file.is_file():
        decoder = json.loads(config_file.read_text()).get("added_tokens_decoder") or {}
        for token_id, token in decoder.items():
            if token.get("content") == IMG_CONTEXT:
                return int(token_id)
    if tokenizer_file.is_file():
        for token in json.loads(tokenizer_file.read_text()).get("added_tokens") or []:
            if token.get("content") == IMG_CONTEXT:
                return int(token["id"])
    return None


def convert_checkpoint(src: str | Path, dst: str | Path, src_format: str, dst_format: str) -> Path:
    """Convert the model directory `src` (format `src_format`) into `dst` (format `dst_format`).

    Weights are renamed (fused InternViT/AIMv2 qkv split or merged, AIMv2 position table reshaped), the
    config translated, and tokenizer / chat-template / processor files copied. Tensors are copied bit for bit,
    so hf -> sailvl-remote -> hf is exact. Remote code (`*.py`) is never copied or run.
    """
    src, dst = Path(src), Path(dst)
    for name, fmt in (("--from", src_format), ("--to", dst_format)):
        if fmt not in FORMATS:
            raise SailvlError(
                f"{name} {fmt!r} is not a checkpoint format; choose one of {', '.join(FORMATS)}"
            )
    if src_format == dst_format:
        raise SailvlError(f"source and destination formats are both {src_format!r}; nothing to convert")
    if not src.is_dir() or not (src / "config.json").is_file():
        raise SailvlError(f"model directory {src} does not exist or has no config.json")
    if dst.resolve() == src.resolve():
        raise SailvlError("the destination directory must differ from the source")
    config = json.loads((src / "config.json").read_text())
    state = _read_state(src)
    try:
        if src_format == "sailvl-remote":
            if config.get("model_type") in MODEL_TYPES:
                raise SailvlError(
                    f"{src} is already in the hf layout (model_type {config['model_type']!r}); use --from hf"
                )
            kind = _vision_kind(config["vision_config"])
            new_config = remote_config_to_hf(config, _tokenizer_image_token_id(src))
            new_state = remote_to_hf(state, kind)
            if new_config["tie_word_embeddings"]:
                new_state.pop("lm_head.weight", None)
        else:
            if config.get("model_type") not in MODEL_TYPES:
                raise SailvlError(
                    f"{src} holds a {config.get('model_type')!r} model, expected an HF 'internvl' model"
                )
            kind = _vision_kind(config["vision_config"])
            new_config, new_state = hf_config_to_remote(config), hf_to_remote(_hf_runtime_names(state), kind)
    except (KeyError, ValueError) as exc:
        if isinstance(exc, SailvlError):
            raise
        raise SailvlError(f"cannot convert {src}: {exc}") from None
    dst.mkdir(parents=True, exist_ok=True)
    if dst_format == "hf":
        _save_hf(new_config, new_state, dst)
    else:
        (dst / "config.json").write_text(json.dumps(new_config, indent=2, sort_keys=True) + "\n")
        tensors = {k: v.contiguous() for k, v in new_state.items()}
        save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    # Copied last so the source's generation_config.json wins over the default transformers writes.
    for item in src.iterdir():
        if (
            item.is_file()
            and item.name not in _NOT_COPIED
            and item.suffix not in (".safetensors", ".py", ".bin")
        ):
            shutil.copy2(item, dst / item.name)
    return dst
