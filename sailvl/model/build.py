"""Building `InternVLForConditionalGeneration` from a preset, or from pretrained vision + LLM parts."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    InternVLConfig,
    InternVLForConditionalGeneration,
)

from sailvl.config.constants import IMG_CONTEXT, SPECIAL_TOKENS
from sailvl.errors import SailvlError
from sailvl.model.loading import load_model
from sailvl.model.presets import MODEL_TYPES, config_from_dict, get_preset_config
from sailvl.model.towers import is_released_tower, load_released_tower, released_tower_config
from sailvl.model.vision_fixes import apply_vision_fixes

# Residual-branch submodules of a ViT block: InternViT (attention, mlp), AIMv2 (attention, ffn), SigLIP (self_attn, mlp).
_ATTENTION_BRANCHES = ("attention", "self_attn", "attn")
_MLP_BRANCHES = ("mlp", "ffn")
_DROP_PATH_RATE = "_sailvl_drop_path_rate"


def _drop_path_hook(module: nn.Module, args, output):
    # Stochastic depth: zero a branch's output for a random subset of tiles, scale the rest by 1/keep.
    # The branch is added to the residual right after (a layer-scale factor in between commutes with it).
    rate = getattr(module, _DROP_PATH_RATE, 0.0)
    if not module.training or rate <= 0.0:
        return output
    hidden = output[0] if isinstance(output, tuple) else output
    keep = 1.0 - rate
    shape = (hidden.shape[0],) + (1,) * (hidden.ndim - 1)
    mask = torch.empty(shape, dtype=hidden.dtype, device=hidden.device).bernoulli_(keep) / keep
    hidden = hidden * mask
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _vision_blocks(model: nn.Module) -> list[nn.Module]:
    tower = model.model.vision_tower
    for name, module in tower.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layer", "layers", "blocks"):
            return list(module)
    return []


def _branch(block: nn.Module, names: tuple[str, ...]) -> nn.Module | None:
    return next((getattr(block, n) for n in names if isinstance(getattr(block, n, None), nn.Module)), None)


def set_vision_drop_path(model: InternVLForConditionalGeneration, rate: float) -> None:
    """ViT drop-path (stochastic depth) at `rate` for the last block, rising linearly from 0 at the first.

    transformers' vision towers have no drop-path (InternViT's remote code had `drop_path_rate`, the HF port
    dropped it), so it is a forward hook on each block's attention and MLP branch, active in training mode
    only; 0 turns it off. A tower whose blocks have no recognisable attention/MLP branch is refused.
    """
    blocks = _vision_blocks(model)
    branches = [(_branch(b, _ATTENTION_BRANCHES), _branch(b, _MLP_BRANCHES)) for b in blocks]
    if not blocks or any(a is None or m is None for a, m in branches):
        if rate > 0:
            kind = model.config.vision_config.model_type
            raise SailvlError(f"vision_drop_path needs a ViT with attention/MLP blocks; {kind} has none")
        return
    for i, pair in enumerate(branches):
        layer_rate = rate * i / max(len(blocks) - 1, 1)
        for branch in pair:
            if not hasattr(branch, _DROP_PATH_RATE):
                branch.register_forward_hook(_drop_path_hook)
            setattr(branch, _DROP_PATH_RATE, layer_rate)


def _seeded_init(seed: int | None):
    if seed is not None:
        torch.manual_seed(seed)


def build_from_config(
    config: InternVLConfig, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int | None = None
) -> InternVLForConditionalGeneration:
    """A randomly initialised model for `config` on `device` (`"meta"` allocates no weight memory)."""
    _seeded_init(seed)
    with torch.device(device):
        model = InternVLForConditionalGeneration(config)
    if device != "meta":
        model = model.to(dtype)
    return apply_vision_fixes(model)


def preset_config(preset: str, tokenizer=None) -> InternVLConfig:
    """The config of a named preset; with `tokenizer`, vocab size and `image_token_id` follow it."""
    config = get_preset_config(preset)
    if tokenizer is None:
        return config
    # Big presets keep their padded Qwen vocabulary when the tokenizer fits inside it; tiny follows it exactly.
    vocab_size = len(tokenizer) if preset == "tiny" else max(len(tokenizer), config.text_config.vocab_size)
    return get_preset_config(preset, vocab_size=vocab_size, image_token_id=_image_token_id(tokenizer))


def build_model(
    preset: str,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    tokenizer=None,
) -> InternVLForConditionalGeneration:
    """Random-init model of a named preset; with `tokenizer`, vocab size and `image_token_id` follow it."""
    return build_from_config(preset_config(preset, tokenizer), device=device, dtype=dtype, seed=seed)


def _image_token_id(tokenizer) -> int:
    token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise SailvlError(f"the tokenizer has no {IMG_CONTEXT} token; add sailvl's special tokens first")
    return int(token_id)


def add_special_tokens(tokenizer) -> int:
    """Add `SPECIAL_TOKENS` (`<img>`, `</img>`, `<IMG_CONTEXT>`, ...) to `tokenizer`; returns how many were new."""
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if not missing:
        return 0
    return tokenizer.add_special_tokens(
        {"additional_special_tokens": missing}, replace_extra_special_tokens=False
    )


def _require_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise SailvlError(f"{what} directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise SailvlError(f"{what} directory {path} has no config.json")
    return path


def _is_model_dir(vision_dir: Path) -> bool:
    """Whether `vision_dir` holds a whole sailvl/InternVL model (either on-disk model_type), not a tower alone.

    Read from config.json directly: AutoConfig does not know "sailvl_internvl" (AIMv2-tower models)."""
    try:
        return json.loads((vision_dir / "config.json").read_text()).get("model_type") in MODEL_TYPES
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def _vision_config(vision_dir: Path):
    """The vision tower config in `vision_dir` (read without weights) and whether it has a CLS token to drop.

    `vision_dir` may also be a sailvl/InternVL model directory, whose vision tower is taken (ViT transfer).
    InternViT has a CLS token; AIMv2 and SigLIP have none. AIMv2's pooling head is dropped (unused here).
    """
    if _is_model_dir(vision_dir):
        config = config_from_dict(json.loads((vision_dir / "config.json").read_text()))
        return config.vision_config, config.vision_feature_select_strategy == "default"
    if is_released_tower(vision_dir):
        return released_tower_config(vision_dir)
    config = AutoConfig.from_pretrained(vision_dir)
    if hasattr(config, "vision_config") and config.model_type != config.vision_config.model_type:
        raise SailvlError(
            f"{vision_dir} holds a {config.model_type} model; save its vision model alone (e.g. SiglipVisionModel)"
        )
    if config.model_type == "aimv2_vision_model" and getattr(config, "use_head", False):
        config.use_head = False
    return config, config.model_type == "internvl_vision"


def _load_vision_tower(vision_dir: Path, dtype: torch.dtype) -> nn.Module:
    """The pretrained vision tower in `vision_dir` (a tower saved alone, or a sailvl/InternVL model's)."""
    if _is_model_dir(vision_dir):
        return load_model(vision_dir, dtype=dtype).model.vision_tower
    if is_released_tower(vision_dir):
        return load_released_tower(vision_dir, dtype)
    tower_config, _ = _vision_config(vision_dir)
    tower = AutoModel.from_pretrained(vision_dir, config=tower_config, dtype=dtype, use_safetensors=True)
    if hasattr(tower, "head") and not getattr(tower_config, "use_head", True):
        tower.use_head = False
        del tower.head
    return tower


def parts_config(
    vision_dir: str | Path, llm_dir: str | Path, tokenizer, downsample_ratio: float = 0.5
) -> InternVLConfig:
    """The InternVLConfig `build_from_parts` assembles, from the parts' config files alone (no weights read).

    `tokenizer` must already hold SPECIAL_TOKENS: the vocabulary grows to fit it and `image_token_id` is
    its `<IMG_CONTEXT>`. Every rank of a sharded start builds this config on the meta device.
    """
    vision_dir = _require_dir(vision_dir, "vision model")
    llm_dir = _require_dir(llm_dir, "language model")
    vision_config, has_cls = _vision_config(Path(vision_dir))
    text_config = AutoConfig.from_pretrained(llm_dir)
    text_config.vocab_size = max(len(tokenizer), text_config.vocab_size)
    config = InternVLConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=_image_token_id(tokenizer),
        downsample_ratio=downsample_ratio,
        vision_feature_select_strategy="default" if has_cls else "full",
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    patch = config.vision_config.patch_size
    patch = patch[0] if isinstance(patch, list | tuple) else patch
    size = config.vision_config.image_size
    size = size[0] if isinstance(size, list | tuple) else size
    config.image_seq_length = int((size // patch) ** 2 * downsample_ratio**2)
    return config


def parts_tokenizer(llm_dir: str | Path, tokenizer_dir: str | Path | None = None):
    """The tokenizer of a from-parts model: `tokenizer_dir` (default `llm_dir`) plus SPECIAL_TOKENS."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or _require_dir(llm_dir, "language model"))
    add_special_tokens(tokenizer)
    return tokenizer


def build_from_parts(
    vision_dir: str | Path,
    llm_dir: str | Path,
    tokenizer_dir: str | Path | None = None,
    downsample_ratio: float = 0.5,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
):
    """Assemble a model from a local vision model dir and a local causal-LM dir, with a fresh projector.

    `vision_dir`: an `AutoModel` vision tower (InternVL vision, AIMv2, SigLIP) or a released remote-code tower
    (SAILViT-Large / -Huge, `sailvit` / `aimv2` model_type) saved alone, or a sailvl /
    InternVL model directory whose vision tower is reused (SAILViT moved to a new LLM). `llm_dir`: a Qwen2 /
    Qwen3 causal LM; its tokenizer is read from `tokenizer_dir` (default `llm_dir`). SPECIAL_TOKENS are added,
    embeddings resized and `config.image_token_id` set to the id of `<IMG_CONTEXT>`. Returns (model, tokenizer).
    """
    vision_dir = _require_dir(vision_dir, "vision model")
    llm_dir = _require_dir(llm_dir, "language model")
    tokenizer = parts_tokenizer(llm_dir, tokenizer_dir)
    config = parts_config(vision_dir, llm_dir, tokenizer, downsample_ratio)
    tower = _load_vision_tower(vision_dir, dtype)
    llm = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=dtype, use_safetensors=True)
    if config.text_config.vocab_size > llm.config.vocab_size:
        llm.resize_token_embeddings(config.text_config.vocab_size, mean_resizing=False)
    model = build_from_config(config, device="meta", seed=seed)
    # Only the projector is new: materialise it with a fresh init, then move the pretrained parts in.
    model.model.vision_tower = tower
    model.model.language_model = llm.model
    model.lm_head = llm.lm_head
    model.model.multi_modal_projector.to_empty(device="cpu")
    _seeded_init(seed)
    _init_projector(model.model.multi_modal_projector)
    model.model.multi_modal_projector.to(dtype)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
    if getattr(tokenizer, "pad_token_id", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if getattr(tokenizer, "eos_token_id", None) is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return apply_vision_fixes(model), tokenizer


def _init_projector(projector: nn.Module, std: float = 0.02) -> None:
    for module in projector.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
