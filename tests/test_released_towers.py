"""Standalone released towers (SAILViT-Large / -Huge, AIMv2 remote code) as `model.vision` of build_from_parts."""

import pytest
import torch
from _model_helpers import plain_tokenizer, save_causal_lm
from _released_layouts import TILE, corpus, tower_reference, write_released_tower

from sailvl.errors import SailvlError
from sailvl.model import build_from_parts


@pytest.mark.parametrize("vision_type", ["sailvit", "aimv2"])
def test_released_tower_is_the_vision_model_of_a_from_parts_build(tmp_path, vision_type):
    weights = write_released_tower(tmp_path / "tower", vision_type)
    save_causal_lm(tmp_path / "llm", plain_tokenizer(corpus()), text_type="qwen3")
    model, tokenizer = build_from_parts(tmp_path / "tower", tmp_path / "llm")
    assert model.config.vision_config.model_type == "aimv2_vision_model"
    assert model.config.vision_feature_select_strategy == "full"  # no CLS token to drop
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    pixels = torch.randn(2, 3, TILE, TILE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = model.model.vision_tower(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(ours, tower_reference(weights, pixels), atol=1e-5, rtol=0)


def test_a_tower_with_an_unknown_weight_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    write_released_tower(tmp_path / "tower")
    state = load_file(tmp_path / "tower" / "model.safetensors") | {"head.proj.weight": torch.zeros(2)}
    save_file(state, str(tmp_path / "tower" / "model.safetensors"))
    save_causal_lm(tmp_path / "llm", plain_tokenizer(corpus()), text_type="qwen3")
    with pytest.raises(SailvlError, match="head.proj.weight"):
        build_from_parts(tmp_path / "tower", tmp_path / "llm")
