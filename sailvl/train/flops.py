"""The one FLOP counter behind MFU (trainer metrics and `sailvl bench train`): model FLOPs of a training step.

Conventions (model FLOPs, not hardware FLOPs: activation recompute is not credited):
- a matmul of an [n, k] input with a [k, m] weight is 2nkm forward; backward is 2nkm for the input gradient and
  2nkm for the weight gradient. A part's weight-gradient FLOPs count only when it trains; its input-gradient
  FLOPs only when a part before it trains (a frozen ViT in front of a trained LLM runs forward only).
- LLM linears run at every non-pad token; the LM head only at the positions whose logits are computed
  (`head_tokens`: the target positions in sailvl's loop, every position in a plain HF loop).
- attention scores (QK^T and AV) per sample: 4 * layers * heads * head_dim * L^2 forward, summed over the packed
  samples' lengths L (sum of L^2, never the pack length squared); the causal mask is not halved (PaLM convention,
  as torchtitan and Megatron report it).
- ViT per tile: patch embedding, attention + MLP linears (GELU MLP: 2 matrices; SwiGLU towers such as AIMv2: 3)
  over the tile's tokens (InternViT adds a CLS token), bidirectional attention over them; then the projector over
  the pixel-shuffled tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn


def _get(config: Any, name: str, default: Any = None) -> Any:
    value = getattr(config, name, None)
    return default if value is None else value


def _side(value: Any) -> int:
    return int(value[0] if isinstance(value, list | tuple) else value)


@dataclass(frozen=True)
class Trainable:
    """Which parts of the model train (weights with gradients): vision tower, projector, LLM (+ LM head)."""

    vision: bool = True
    projector: bool = True
    llm: bool = True


def trainable_parts(model: nn.Module) -> Trainable:
    """Which parts of an InternVL-style model have any parameter with `requires_grad`."""

    def trains(module: nn.Module | None) -> bool:
        return module is not None and any(p.requires_grad for p in module.parameters())

    inner = getattr(model, "model", model)
    return Trainable(
        vision=trains(getattr(inner, "vision_tower", None)),
        projector=trains(getattr(inner, "multi_modal_projector", None)),
        llm=trains(getattr(inner, "language_model", None)) or trains(getattr(model, "lm_head", None)),
    )


def _pass_factor(trains: bool, upstream_trains: bool) -> float:
    """Passes in units of the forward FLOPs: forward, input gradient (when this part or one before it trains: a
    trained part backpropagates through its own layers), weight gradient (when it trains)."""
    return 1.0 + float(trains or upstream_trains) + float(trains)


def llm_linear_flops(text_config: Any) -> float:
    """Forward FLOPs per token of one pass through the decoder's linears (no LM head, no attention scores)."""
    d = text_config.hidden_size
    heads = text_config.num_attention_heads
    kv = _get(text_config, "num_key_value_heads", heads)
    head_dim = _get(text_config, "head_dim", d // heads)
    ffn = text_config.intermediate_size
    per_layer = 2 * d * heads * head_dim + 2 * d * kv * head_dim + 3 * d * ffn  # q, o; k, v; SwiGLU
    return 2.0 * text_config.num_hidden_layers * per_layer


def llm_attention_flops(text_config: Any, sum_sq_lengths: float) -> float:
    """Forward FLOPs of the attention scores (QK^T, AV) of samples whose squared lengths sum to `sum_sq_lengths`."""
    heads = text_config.num_attention_heads
    head_dim = _get(text_config, "head_dim", text_config.hidden_size // heads)
    return 4.0 * text_config.num_hidden_layers * heads * head_dim * sum_sq_lengths


def vision_tokens_per_tile(vision_config: Any) -> int:
    """ViT sequence length of one tile: (image_size / patch)^2 patches, + 1 CLS token for InternViT."""
    patches = (_side(vision_config.image_size) // _side(vision_config.patch_size)) ** 2
    return patches + (1 if _get(vision_config, "model_type", "") == "internvl_vision" else 0)


def is_swiglu_tower(vision_config: Any) -> bool:
    """AIMv2 (SAILViT) towers have a gated SwiGLU MLP (3 matrices); InternViT a GELU MLP (2)."""
    return str(_get(vision_config, "model_type", "")).startswith("aimv2")


def vision_forward_flops_per_tile(model_config: Any) -> tuple[float, float, float]:
    """Forward FLOPs of one tile through (the patch embedding, the ViT's layers, the projector)."""
    vision = model_config.vision_config
    d, ffn, layers = vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers
    patch = _side(vision.patch_size)
    tokens = vision_tokens_per_tile(vision)
    patches = (_side(vision.image_size) // patch) ** 2
    mlp_mats = 3 if is_swiglu_tower(vision) else 2
    linears = 2.0 * tokens * layers * (4 * d * d + mlp_mats * d * ffn)
    attention = 4.0 * layers * d * tokens * tokens
    embed = 2.0 * patches * 3 * patch * patch * d
    ratio = _get(model_config, "downsample_ratio", 0.5)
    out_tokens = patches * ratio * ratio
    d_in = d * round(1 / (ratio * ratio))
    d_llm = model_config.text_config.hidden_size
    projector = 2.0 * out_tokens * (d_in * d_llm + d_llm * d_llm)
    return embed, linears + attention, projector


def sum_squares(lengths: Iterable[int]) -> int:
    """Sum of L^2 over sample lengths: the attention work of a pack (what `train_step_flops` takes)."""
    return sum(int(n) * int(n) for n in lengths)


def train_step_flops(
    model_config: Any,
    tokens: int,
    sum_sq_lengths: int,
    tiles: int,
    head_tokens: int,
    trainable: Trainable = Trainable(),
) -> float:
    """Model FLOPs of one training step (forward + backward) over the given work.

    `tokens`: non-pad LLM tokens (pads are not useful work); `sum_sq_lengths`: sum of L^2 over the step's samples
    (`sum_squares`); `tiles`: image tiles through the ViT; `head_tokens`: positions whose logits the LM head
    computes; `trainable`: which parts train (`trainable_parts(model)`).
    """
    sum_sq = sum_sq_lengths
    text = model_config.text_config
    llm_fwd = tokens * llm_linear_flops(text) + llm_attention_flops(text, sum_sq)
    head_fwd = 2.0 * head_tokens * text.hidden_size * text.vocab_size
    embed_fwd, vit_fwd, proj_fwd = vision_forward_flops_per_tile(model_config)
    vision_in = tiles > 0
    total = (llm_fwd + head_fwd) * _pass_factor(
        trainable.llm, vision_in and (trainable.vision or trainable.projector)
    )
    total += tiles * proj_fwd * _pass_factor(trainable.projector, trainable.vision)
    total += tiles * vit_fwd * _pass_factor(trainable.vision, False)
    total += tiles * embed_fwd * (1.0 + float(trainable.vision))  # pixels need no gradient
    return total
