"""Checkpoint conversion sailvl-remote <-> hf: key layout, fused qkv, config translation, exact round trips."""

import json

import pytest
import torch
from _model_helpers import image_inputs, tiny_aimv2_config, tiny_internvit_config, tiny_internvl_config
from safetensors.torch import load_file

from sailvl.config.constants import RELEASE_KEY
from sailvl.errors import SailvlError
from sailvl.model import build_from_config, convert_checkpoint, load_model, save_model


def _tiny(kind):
    vision = tiny_internvit_config() if kind == "internvit" else tiny_aimv2_config()
    tie = kind == "internvit"
    config = tiny_internvl_config(
        vision, vocab_size=64, image_token_id=5, tie=tie, text_type="qwen2" if tie else "qwen3"
    )
    return build_from_config(config, seed=0).eval()


def _same_tensors(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["internvit", "aimv2"])
def test_round_trip_is_exact(tmp_path, kind):
    model = _tiny(kind)
    save_model(model, tmp_path / "hf")
    (tmp_path / "hf" / "tokenizer_config.json").write_text("{}")
    convert_checkpoint(tmp_path / "hf", tmp_path / "remote", "hf", "sailvl-remote")
    convert_checkpoint(tmp_path / "remote", tmp_path / "hf2", "sailvl-remote", "hf")
    convert_checkpoint(tmp_path / "hf2", tmp_path / "remote2", "hf", "sailvl-remote")

    assert _same_tensors(
        load_file(tmp_path / "hf/model.safetensors"), load_file(tmp_path / "hf2/model.safetensors")
    )
    remote = load_file(tmp_path / "remote/model.safetensors")
    assert _same_tensors(remote, load_file(tmp_path / "remote2/model.safetensors"))
    hf2_config = json.loads((tmp_path / "hf2/config.json").read_text())
    assert hf2_config.pop(RELEASE_KEY)["config"] == json.loads((tmp_path / "remote/config.json").read_text())
    assert json.loads((tmp_path / "hf/config.json").read_text()) == hf2_config
    assert (tmp_path / "remote" / "tokenizer_config.json").is_file()

    inputs = image_inputs(model)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, load_model(tmp_path / "hf2")(**inputs).logits)


def test_internvit_remote_layout_has_fused_qkv_and_released_names(tmp_path):
    model = _tiny("internvit")
    save_model(model, tmp_path / "hf")
    convert_checkpoint(tmp_path / "hf", tmp_path / "remote", "hf", "sailvl-remote")
    remote = load_file(tmp_path / "remote/model.safetensors")
    layer = model.model.vision_tower.encoder.layer[1].attention
    fused = torch.cat([layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight])
    assert torch.equal(remote["vision_model.encoder.layers.1.attn.qkv.weight"], fused)
    for key in (
        "vision_model.embeddings.class_embedding",
        "vision_model.encoder.layers.0.ls1",
        "mlp1.0.weight",
        "mlp1.1.weight",
        "mlp1.3.bias",
        "language_model.model.embed_tokens.weight",
    ):
        assert key in remote, key
    assert not any(k.startswith(("model.", "vision_tower.", "multi_modal_projector.")) for k in remote)
    config = json.loads((tmp_path / "remote/config.json").read_text())
    assert (
        config["model_type"] == "internvl_chat" and config["vision_config"]["model_type"] == "intern_vit_6b"
    )
    assert config["llm_config"]["model_type"] == "qwen2" and config["downsample_ratio"] == 0.5


def test_aimv2_remote_layout_maps_swiglu_and_position_table(tmp_path):
    model = _tiny("aimv2")
    save_model(model, tmp_path / "hf")
    convert_checkpoint(tmp_path / "hf", tmp_path / "remote", "hf", "sailvl-remote")
    remote = load_file(tmp_path / "remote/model.safetensors")
    tower = model.model.vision_tower
    block = tower.encoder.layers[0]
    assert torch.equal(remote["vision_model.trunk.blocks.0.mlp.fc1.weight"], block.ffn.gate_proj.weight)
    assert torch.equal(remote["vision_model.trunk.blocks.0.mlp.fc3.weight"], block.ffn.up_proj.weight)
    assert torch.equal(remote["vision_model.trunk.blocks.0.mlp.fc2.weight"], block.ffn.down_proj.weight)
    assert remote["vision_model.preprocessor.pos_embed"].shape == (1, 64, 32)
    assert "vision_model.trunk.post_trunk_norm.weight" in remote
    assert "language_model.lm_head.weight" in remote  # untied LLM keeps its head


def test_bad_conversions_are_user_errors(tmp_path):
    with pytest.raises(SailvlError, match="not a checkpoint format"):
        convert_checkpoint(tmp_path, tmp_path / "x", "gguf", "hf")
    with pytest.raises(SailvlError, match="does not exist"):
        convert_checkpoint(tmp_path / "none", tmp_path / "x", "sailvl-remote", "hf")
    model = _tiny("internvit")
    save_model(model, tmp_path / "hf")
    with pytest.raises(SailvlError, match="already in the hf layout"):
        convert_checkpoint(tmp_path / "hf", tmp_path / "x", "sailvl-remote", "hf")
