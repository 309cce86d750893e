"""Fixes sailvl applies to every vision tower it builds or loads (hooks only; no class is patched)."""

from __future__ import annotations

from torch import nn
from transformers import InternVLForConditionalGeneration

_CONTIGUOUS_HOOK_FLAG = "_sailvl_contiguous_hook"


def _make_outputs_contiguous(module: nn.Module, args, output):
    # Aimv2VisionModel returns a transposed view of its patch embeddings all the way through, and InternVL's
    # pixel_shuffle calls `.view` on it, which fails. Copying here fixes that without touching any class.
    if getattr(output, "last_hidden_state", None) is not None:
        output.last_hidden_state = output.last_hidden_state.contiguous()
    if getattr(output, "hidden_states", None) is not None:
        output.hidden_states = tuple(h.contiguous() if h is not None else h for h in output.hidden_states)
    return output


def apply_vision_fixes(model: InternVLForConditionalGeneration) -> InternVLForConditionalGeneration:
    """Register the contiguity hook on the vision tower of `model` (once; idempotent); returns `model`."""
    tower = model.model.vision_tower
    if not getattr(tower, _CONTIGUOUS_HOOK_FLAG, False):
        tower.register_forward_hook(_make_outputs_contiguous)
        setattr(tower, _CONTIGUOUS_HOOK_FLAG, True)
    return model
