"""The MFU FLOP counter (`sailvl.train.flops`) against a hand count and against torch's own FLOP counter."""

import pytest
import torch
from transformers import Aimv2VisionConfig, InternVLConfig, InternVLVisionConfig, Qwen2Config

from sailvl.train.flops import Trainable, sum_squares, train_step_flops, trainable_parts


def _config(aimv2: bool) -> InternVLConfig:
    text = Qwen2Config(
        hidden_size=8, num_attention_heads=2, num_key_value_heads=1, head_dim=4, intermediate_size=16,
        num_hidden_layers=1, vocab_size=10,
    )  # fmt: skip
    kw = dict(hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1, patch_size=14)
    vision = (
        Aimv2VisionConfig(image_size=28, **kw) if aimv2 else InternVLVisionConfig(image_size=[28, 28], **kw)
    )
    return InternVLConfig(vision_config=vision, text_config=text, downsample_ratio=0.5)


def test_hand_count_for_a_tiny_config():
    # LLM linears per token: q 8x8, o 8x8, k 8x4, v 8x4, SwiGLU 3x8x16 = 576 MACs -> 1152 FLOPs forward.
    # Attention per sample: 4 * layers(1) * heads(2) * head_dim(4) * L^2 = 32 L^2 forward.
    # Two samples of 3 and 5 tokens (8 tokens, sum L^2 = 34), LM head (8x10) at 4 target positions.
    llm_fwd = 8 * 1152 + 32 * 34 + 4 * 2 * 8 * 10
    text_only = train_step_flops(_config(False), 8, sum_squares([3, 5]), 0, 4)
    assert text_only == 3 * llm_fwd  # fwd + input grad + weight grad
    # One InternViT tile: 28/14 -> 4 patches + CLS = 5 tokens; linears 4x4x4 + GELU MLP 2x4x8 = 128 MACs/token;
    # attention 4 * 4 * 25; patch embedding 4 patches x 3*14*14 x 4; projector over 1 pixel-shuffled token:
    # 16x8 + 8x8 MACs.
    vit = 2 * 5 * 128 + 4 * 4 * 25
    embed = 2 * 4 * 588 * 4
    proj = 2 * (16 * 8 + 8 * 8)
    assert train_step_flops(_config(False), 8, 34, 1, 4) == 3 * llm_fwd + 3 * (vit + proj) + 2 * embed
    # AIMv2: no CLS (4 tokens), SwiGLU MLP has 3 matrices: 4x4x4 + 3x4x8 = 160 MACs/token.
    vit_aim = 2 * 4 * 160 + 4 * 4 * 16
    assert train_step_flops(_config(True), 8, 34, 1, 4) == 3 * llm_fwd + 3 * (vit_aim + proj) + 2 * embed
    # Frozen ViT in front: forward only; frozen LLM behind a trained projector: no weight gradient.
    frozen_vit = Trainable(vision=False)
    assert train_step_flops(_config(False), 8, 34, 1, 4, frozen_vit) == 3 * llm_fwd + 3 * proj + vit + embed
    frozen_llm = Trainable(vision=False, llm=False)
    assert train_step_flops(_config(False), 8, 34, 1, 4, frozen_llm) == 2 * llm_fwd + 3 * proj + vit + embed


def test_packed_attention_counts_samples_not_the_pack():
    cfg = _config(False)
    one_long = train_step_flops(cfg, 8, sum_squares([8]), 0, 4)
    two_short = train_step_flops(cfg, 8, sum_squares([4, 4]), 0, 4)
    assert one_long - two_short == 3 * 32 * (64 - 32)


@pytest.mark.parametrize("preset", ["tiny", "tiny-aimv2"])
def test_counter_matches_torch_flop_counter_on_the_tiny_models(preset):
    """One sample, no padding, target-only logits: torch's FlopCounterMode over forward + backward agrees."""
    from torch.utils.flop_counter import FlopCounterMode

    from sailvl.model import build_model
    from sailvl.model.presets import image_tokens_per_tile

    model = build_model(preset, seed=0).train()
    model.set_attn_implementation("eager")  # its score matmuls are visible to the counter
    cfg = model.config
    tiles, image_tokens = 2, image_tokens_per_tile(cfg)
    length = 40
    input_ids = torch.randint(0, 100, (1, length))
    input_ids[0, 1 : 1 + tiles * image_tokens] = cfg.image_token_id
    keep = torch.zeros(1, length, dtype=torch.bool)
    keep[0, -12:] = True
    pixels = torch.randn(tiles, 3, 112, 112)
    with FlopCounterMode(display=False) as counter:
        logits = model(input_ids=input_ids, pixel_values=pixels, logits_to_keep=keep, use_cache=False).logits
        logits.float().sum().backward()
    ours = train_step_flops(cfg, length, length * length, tiles, 12, trainable_parts(model))
    assert ours == pytest.approx(counter.get_total_flops(), rel=1e-3)


def test_train_step_reports_the_counter_inputs():
    """What the trainer's MFU reads from a step: per-sample attention work and the LM-head positions."""
    from _train_helpers import make_batch

    from sailvl.model import build_model
    from sailvl.train.parallel import DistInfo
    from sailvl.train.step import train_step

    model = build_model("tiny", seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    micro = [make_batch(0, length=48), make_batch(1, length=64)]
    result = train_step(model, optimizer, micro, DistInfo(), torch.float32, 1.0)
    assert result.sum_sq_lengths == 48**2 + 64**2
    assert result.head_tokens == result.target_tokens == sum(b["num_target_tokens"] for b in micro)
