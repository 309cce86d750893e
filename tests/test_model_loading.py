"""Strict loading, plain-transformers interop, and building from pretrained parts (incl. ViT transfer)."""

import pytest
import torch
from _model_helpers import (
    image_inputs,
    plain_tokenizer,
    save_causal_lm,
    save_vision_model,
    tiny_aimv2_config,
    tiny_internvit_config,
)
from conftest import tiny_corpus
from safetensors.torch import load_file, save_file

from sailvl.errors import SailvlError
from sailvl.model import build_from_parts, build_model, load_model, save_model


def _logits(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).logits


@pytest.fixture
def tiny_dir(tmp_path, tiny_tokenizer):
    model = build_model("tiny", tokenizer=tiny_tokenizer, seed=0)
    save_model(model, tmp_path / "m")
    tiny_tokenizer.save_pretrained(tmp_path / "m")
    return model, tmp_path / "m"


def test_sailvl_saved_model_loads_in_plain_transformers_with_identical_logits(tiny_dir):
    from transformers import AutoModelForImageTextToText

    model, path = tiny_dir
    inputs = image_inputs(model, n_tiles=2)
    plain = AutoModelForImageTextToText.from_pretrained(path)
    assert type(plain).__name__ == "InternVLForConditionalGeneration"
    assert torch.equal(_logits(model, inputs), _logits(plain, inputs))
    assert torch.equal(_logits(model, inputs), _logits(load_model(path), inputs))


def test_plain_transformers_saved_model_loads_through_sailvl(tmp_path, tiny_tokenizer):
    from transformers import InternVLForConditionalGeneration

    from sailvl.model import get_preset_config

    config = get_preset_config("tiny", vocab_size=len(tiny_tokenizer), image_token_id=5)
    torch.manual_seed(1)
    plain = InternVLForConditionalGeneration(config)
    plain.save_pretrained(tmp_path / "plain")
    tiny_tokenizer.save_pretrained(tmp_path / "plain")
    loaded = load_model(tmp_path / "plain")
    inputs = image_inputs(plain)
    assert torch.equal(_logits(plain, inputs), _logits(loaded, inputs))


def test_missing_and_unexpected_keys_raise(tiny_dir):
    _, path = tiny_dir
    state = load_file(path / "model.safetensors")
    dropped = next(k for k in state if k.endswith("linear_2.bias"))
    del state[dropped]
    state["extra.weight"] = torch.zeros(2)
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SailvlError, match="missing keys.*unexpected keys"):
        load_model(path)


def test_bad_model_dirs_raise_one_line_errors(tmp_path, tiny_dir):
    with pytest.raises(SailvlError, match="does not exist"):
        load_model(tmp_path / "nope")
    _, path = tiny_dir
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    with pytest.raises(SailvlError, match="no .safetensors"):
        load_model(path)


def test_aimv2_model_round_trips_through_save_and_load(tmp_path):
    from _model_helpers import tiny_internvl_config

    from sailvl.model import build_from_config

    config = tiny_internvl_config(tiny_aimv2_config(), vocab_size=64, image_token_id=5, text_type="qwen3")
    model = build_from_config(config, seed=0)
    save_model(model, tmp_path / "a")
    loaded = load_model(tmp_path / "a")
    assert loaded.config.vision_config.model_type == "aimv2_vision_model"
    inputs = image_inputs(model)
    assert torch.equal(_logits(model, inputs), _logits(loaded, inputs))


@pytest.mark.parametrize("vision_kind", ["internvit", "aimv2"])
def test_build_from_parts_adds_tokens_and_keeps_pretrained_weights(tmp_path, vision_kind):
    from transformers import AutoModel, AutoModelForCausalLM

    tokenizer = plain_tokenizer(tiny_corpus())
    vision_config = tiny_internvit_config() if vision_kind == "internvit" else tiny_aimv2_config()
    vision_dir = save_vision_model(tmp_path / "vit", vision_config)
    llm_dir = save_causal_lm(
        tmp_path / "llm", tokenizer, text_type="qwen2" if vision_kind == "internvit" else "qwen3"
    )
    model, tok = build_from_parts(vision_dir, llm_dir, seed=0)

    assert len(tok) == len(tokenizer) + 9
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert model.config.text_config.vocab_size == len(tok)
    assert model.lm_head.weight.shape[0] == len(tok)
    vit = AutoModel.from_pretrained(vision_dir)
    for name, tensor in vit.state_dict().items():
        assert torch.equal(model.model.vision_tower.state_dict()[name], tensor), name
    llm = AutoModelForCausalLM.from_pretrained(llm_dir)
    embed = model.model.language_model.embed_tokens.weight
    assert torch.equal(embed[: len(tokenizer)], llm.model.embed_tokens.weight)
    logits = _logits(model, image_inputs(model))
    assert logits.shape == (1, 22, len(tok)) and torch.isfinite(logits).all()

    save_model(model, tmp_path / "vlm")
    tok.save_pretrained(tmp_path / "vlm")
    assert torch.equal(_logits(load_model(tmp_path / "vlm"), image_inputs(model)), logits)


def test_vit_transfer_moves_a_trained_vision_tower_to_a_new_llm(tmp_path, tiny_tokenizer, tiny_dir):
    source, source_dir = tiny_dir
    tokenizer = plain_tokenizer(tiny_corpus())
    llm_dir = save_causal_lm(tmp_path / "new_llm", tokenizer, seed=5)
    model, _ = build_from_parts(source_dir, llm_dir, seed=0)
    src_vit = source.model.vision_tower.state_dict()
    for name, tensor in model.model.vision_tower.state_dict().items():
        assert torch.equal(src_vit[name], tensor)
    assert model.config.vision_feature_select_strategy == "default"
    assert model.config.text_config.vocab_size == len(tokenizer) + 9


def test_build_from_parts_rejects_missing_dirs(tmp_path):
    with pytest.raises(SailvlError, match="vision model directory"):
        build_from_parts(tmp_path / "none", tmp_path / "none2")
