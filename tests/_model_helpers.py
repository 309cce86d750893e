"""Tiny random model parts for the model/infer tests (all offline, a few seconds on CPU)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

TINY_TEXT = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1
)


def tiny_aimv2_config(**overrides):
    """An AIMv2 vision config at 112 px / patch 14 (64 patches, 16 tokens after pixel shuffle)."""
    from transformers import Aimv2VisionConfig

    kwargs = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=112,
        patch_size=14,
        use_head=False,
    )
    return Aimv2VisionConfig(**(kwargs | overrides))


def tiny_internvit_config(**overrides):
    """An InternViT (InternVLVisionConfig) at 112 px / patch 14 with a CLS token."""
    from transformers import InternVLVisionConfig

    kwargs = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    return InternVLVisionConfig(
        **(kwargs | dict(image_size=112, patch_size=14, attention_bias=True) | overrides)
    )


def tiny_internvl_config(
    vision, vocab_size: int, image_token_id: int, tie: bool = True, text_type: str = "qwen2"
):
    """An InternVLConfig around `vision` and a 1-layer Qwen2/Qwen3 LLM."""
    from transformers import InternVLConfig, Qwen2Config, Qwen3Config

    text_cls = Qwen2Config if text_type == "qwen2" else Qwen3Config
    extra = {} if text_type == "qwen2" else {"head_dim": 16}
    text = text_cls(vocab_size=vocab_size, tie_word_embeddings=tie, **TINY_TEXT, **extra)
    strategy = "full" if vision.model_type == "aimv2_vision_model" else "default"
    return InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        image_seq_length=16,
        vision_feature_select_strategy=strategy,
        tie_word_embeddings=tie,
    )


def plain_tokenizer(corpus: list[str], vocab_size: int = 300):
    """A byte-level BPE tokenizer with only the ChatML tokens (no image tokens), like a bare LLM's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=specials[0], eos_token=specials[2])


def save_causal_lm(out: Path, tokenizer, text_type: str = "qwen2", seed: int = 0) -> Path:
    """A random 1-layer Qwen2/Qwen3 causal LM sized for `tokenizer`, saved with it to `out`."""
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen3Config

    torch.manual_seed(seed)
    cls = Qwen2Config if text_type == "qwen2" else Qwen3Config
    extra = {} if text_type == "qwen2" else {"head_dim": 16}
    config = cls(vocab_size=len(tokenizer), tie_word_embeddings=True, **TINY_TEXT, **extra)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def save_vision_model(out: Path, config, seed: int = 0) -> Path:
    """A random vision tower (`AutoModel.from_config`) saved to `out`."""
    from transformers import AutoModel

    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(out)
    return out


def image_inputs(model, n_tiles: int = 1, seed: int = 0) -> dict:
    """`input_ids` with 16 image tokens per tile between text, and matching random `pixel_values`."""
    gen = torch.Generator().manual_seed(seed)
    image_id = model.config.image_token_id
    ids = [1, 7, 9] + [image_id] * (16 * n_tiles) + [11, 12, 2]
    return {
        "input_ids": torch.tensor([ids]),
        "pixel_values": torch.randn(n_tiles, 3, 112, 112, generator=gen),
    }


def save_test_image(path: Path, size=(150, 100), colour=(200, 30, 30)) -> Path:
    """A small solid-colour PNG with a darker square, for chat/generate tests."""
    image = Image.new("RGB", size, colour)
    image.paste((20, 20, 160), (10, 10, 60, 60))
    image.save(path)
    return path
