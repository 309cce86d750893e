"""Named model shapes: a registry from preset name to an `InternVLConfig` builder."""

from __future__ import annotations

from collections.abc import Callable

from transformers import Aimv2VisionConfig, InternVLConfig, InternVLVisionConfig, Qwen2Config, Qwen3Config

from sailvl.errors import SailvlError

# Id of `<IMG_CONTEXT>` in the released tokenizers, for presets built without a tokenizer (a tokenizer's own id
# always wins). Qwen2.5 releases: 151667 (SPEC section 1). In the Qwen3 tokenizer 151667 is `<think>`; SAIL-VL2's
# tokenizer puts `<IMG_CONTEXT>` at 151671.
QWEN25_IMG_CONTEXT_ID = 151667
QWEN3_IMG_CONTEXT_ID = 151671
QWEN_VOCAB = 151936
TINY_VOCAB = 512
TINY_IMG_CONTEXT_ID = 5


def _internvit_300m(image_size: int = 448) -> InternVLVisionConfig:
    """InternViT-300M-448px: hidden 1024, 24 layers, 16 heads, MLP 4096, LayerNorm, layer scale, CLS token."""
    return InternVLVisionConfig(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        attention_bias=True,
        use_qk_norm=False,
        norm_type="layer_norm",
        layer_norm_eps=1e-6,
        image_size=image_size,
        patch_size=14,
        layer_scale_init_value=0.1,
        use_mean_pooling=True,  # no final norm in InternViT: the encoder output goes straight to pixel shuffle
    )


def _aimv2_huge(image_size: int = 448) -> Aimv2VisionConfig:
    """AIMv2-Huge-448 / SAILViT-Huge: hidden 1536, 24 layers, 12 heads, SwiGLU MLP 4096, RMSNorm, no CLS."""
    return Aimv2VisionConfig(
        hidden_size=1536,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=12,
        image_size=image_size,
        patch_size=14,
        rms_norm_eps=1e-5,
        qkv_bias=False,
        mlp_bias=False,
        use_head=False,  # the attention-pooling head is for classification; the VLM reads patch tokens
        is_native=False,
    )


def _qwen2(hidden, layers, heads, kv_heads, intermediate, vocab, tie, max_pos=32768) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_pos,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    )


def _internvl(vision, text, image_token_id: int, select_strategy: str, tile_size: int) -> InternVLConfig:
    patches = (tile_size // 14) ** 2
    return InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        image_seq_length=int(patches * 0.25),
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        # InternViT prepends a CLS token that is dropped ("default"); AIMv2 has none ("full").
        vision_feature_select_strategy=select_strategy,
        tie_word_embeddings=text.tie_word_embeddings,
    )


def tiny(vocab_size: int = TINY_VOCAB, image_token_id: int | None = None) -> InternVLConfig:
    """CPU demo size: InternViT 64x2 at 112 px (16 image tokens per tile), Qwen2 128x2; ~0.8M params."""
    vision = InternVLVisionConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        attention_bias=True,
        image_size=112,
        patch_size=14,
        use_mean_pooling=True,
    )
    text = _qwen2(128, 2, 4, 2, 512, vocab_size, tie=True, max_pos=4096)
    # Without a tokenizer, follow sailvl's BPE tokenizer layout: <|endoftext|>, <|im_start|>, <|im_end|>,
    # then SPECIAL_TOKENS, which puts <IMG_CONTEXT> at id 5.
    token_id = TINY_IMG_CONTEXT_ID if image_token_id is None else image_token_id
    return _internvl(vision, text, token_id, "default", 112)


def tiny_aimv2(vocab_size: int = TINY_VOCAB, image_token_id: int | None = None) -> InternVLConfig:
    """`tiny` with an AIMv2 tower (64x2, SwiGLU 256, RMSNorm, no CLS) instead of InternViT: the SAILViT shape."""
    vision = Aimv2VisionConfig(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=112,
        patch_size=14,
        use_head=False,
        is_native=False,
    )
    text = _qwen2(128, 2, 4, 2, 512, vocab_size, tie=True, max_pos=4096)
    token_id = TINY_IMG_CONTEXT_ID if image_token_id is None else image_token_id
    return _internvl(vision, text, token_id, "full", 112)


def sailvl_2b(vocab_size: int = QWEN_VOCAB, image_token_id: int | None = None) -> InternVLConfig:
    """SAIL-VL-2B: InternViT-300M-448px + Qwen2.5-1.5B (tied embeddings)."""
    text = _qwen2(1536, 28, 12, 2, 8960, vocab_size, tie=True)
    return _internvl(_internvit_300m(), text, image_token_id or QWEN25_IMG_CONTEXT_ID, "default", 448)


def sailvl_8b(vocab_size: int = 152064, image_token_id: int | None = None) -> InternVLConfig:
    """SAIL-VL-8B: InternViT-300M-448px + Qwen2.5-7B (untied embeddings, vocab 152064)."""
    text = _qwen2(3584, 28, 28, 4, 18944, vocab_size, tie=False)
    return _internvl(_internvit_300m(), text, image_token_id or QWEN25_IMG_CONTEXT_ID, "default", 448)


def sailvl15_2b(vocab_size: int = QWEN_VOCAB, image_token_id: int | None = None) -> InternVLConfig:
    """SAIL-VL-1.5-2B: AIMv2-Huge-448 (SAILViT-Huge) vision tower + Qwen2.5-1.5B (tied embeddings)."""
    text = _qwen2(1536, 28, 12, 2, 8960, vocab_size, tie=True)
    return _internvl(_aimv2_huge(), text, image_token_id or QWEN25_IMG_CONTEXT_ID, "full", 448)


def sailvl2_2b(vocab_size: int = QWEN_VOCAB, image_token_id: int | None = None) -> InternVLConfig:
    """SAIL-VL2-2B: AIMv2-Huge-448 vision tower + Qwen3-1.7B (tied embeddings, qk-norm)."""
    text = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    )
    return _internvl(_aimv2_huge(), text, image_token_id or QWEN3_IMG_CONTEXT_ID, "full", 448)


PRESETS: dict[str, Callable[..., InternVLConfig]] = {
    "tiny": tiny,
    "tiny-aimv2": tiny_aimv2,
    "sailvl-2b": sailvl_2b,
    "sailvl-1.5-2b": sailvl15_2b,
    "sailvl-8b": sailvl_8b,
    "sailvl2-2b": sailvl2_2b,
}


def get_preset_config(
    name: str, vocab_size: int | None = None, image_token_id: int | None = None
) -> InternVLConfig:
    """The `InternVLConfig` of preset `name`; `vocab_size`/`image_token_id` override the preset's tokenizer ids."""
    if name not in PRESETS:
        raise SailvlError(f"unknown model preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    kwargs = {}
    if vocab_size is not None:
        kwargs["vocab_size"] = vocab_size
    if image_token_id is not None:
        kwargs["image_token_id"] = image_token_id
    return PRESETS[name](**kwargs)


def tile_size_of(config: InternVLConfig) -> int:
    """Tile side in pixels the vision tower was built for."""
    size = config.vision_config.image_size
    return int(size[0] if isinstance(size, list | tuple) else size)


def image_tokens_per_tile(config: InternVLConfig) -> int:
    """LLM tokens one tile becomes: (tile / patch)^2 patches, times downsample_ratio^2 after pixel shuffle."""
    patch = config.vision_config.patch_size
    patch = int(patch[0] if isinstance(patch, list | tuple) else patch)
    side = tile_size_of(config) // patch
    return int(side * side * config.downsample_ratio**2)


# On-disk model_type of a sailvl model directory. transformers' InternVLConfig can only describe an InternViT
# tower: from a config.json it builds InternVLVisionConfig whatever the vision model_type says, so an AIMv2
# model saved as "internvl" reloads in plain transformers with a random InternViT tower and only a warning.
# Such models are saved as SAILVL_MODEL_TYPE instead, which transformers does not know and refuses loudly;
# sailvl reads both (the weights and every other field are the same InternVL layout).
HF_MODEL_TYPE = "internvl"
SAILVL_MODEL_TYPE = "sailvl_internvl"
MODEL_TYPES = (HF_MODEL_TYPE, SAILVL_MODEL_TYPE)


def config_from_dict(data: dict) -> InternVLConfig:
    """`InternVLConfig` from a config.json dict, keeping a non-InternViT vision tower (AIMv2, SigLIP) intact.

    `InternVLConfig` turns any dict `vision_config` into `InternVLVisionConfig`, whatever its `model_type`;
    building the vision sub-config from its own model type first avoids that.
    """
    from transformers import AutoConfig

    data = dict(data)
    vision = data.get("vision_config")
    if isinstance(vision, dict) and vision.get("model_type", "internvl_vision") != "internvl_vision":
        vision = dict(vision)
        data["vision_config"] = AutoConfig.for_model(vision.pop("model_type"), **vision)
    for key in ("model_type", "transformers_version"):
        data.pop(key, None)
    return InternVLConfig(**data)
