"""Conversion parity against the released remote-code layout, built here without sailvl's writer.

The checkpoints are random tensors named as the released SAIL-VL / InternVL-chat remote code names them
(modeling_internvl_chat.py, modeling_intern_vit.py; for AIMv2 the SAIL-VL-1.6-8B release's
model.safetensors.index.json, modeling_sailvl.py and config.json; SPEC section 1) with a config.json shaped like
the released ones, transformers-4.45 serialisation noise included. The reference forward below is plain PyTorch following that code:
InternViT / AIMv2 trunk, CLS drop (InternViT), InternVL's pixel shuffle (ps_version v2), `mlp1`, and the LLM as
transformers' Qwen2ForCausalLM loaded from the `language_model.*` keys. `sailvl convert` + sailvl's model must
give the same logits (fp32, 1e-5).
"""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM

from sailvl.model import convert_checkpoint, load_model

TILE, PATCH, RATIO = 112, 14, 0.5
VISION_HIDDEN, VISION_LAYERS, VISION_HEADS, VISION_MLP = 32, 2, 2, 64
IMG_CONTEXT_ID, VOCAB = 7, 64

# What transformers 4.45 serialises into every sub-config of the released checkpoints (SAIL-VL-1.6-8B's
# config.json carries all of these in llm_config and vision_config).
SERIALISED_DEFAULTS = {
    "add_cross_attention": False,
    "bad_words_ids": None,
    "chunk_size_feed_forward": 0,
    "diversity_penalty": 0.0,
    "do_sample": False,
    "early_stopping": False,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "is_decoder": False,
    "is_encoder_decoder": False,
    "length_penalty": 1.0,
    "max_length": 20,
    "min_length": 0,
    "num_beams": 1,
    "output_attentions": False,
    "output_hidden_states": False,
    "pruned_heads": {},
    "return_dict": True,
    "tf_legacy_loss": False,
    "tie_encoder_decoder": False,
    "torchscript": False,
    "transformers_version": "4.45.1",
    "use_bfloat16": False,
}
# Fields as in the released Qwen2.5 llm_config (flash-attention and dtype entries included on purpose).
LLM_CONFIG = SERIALISED_DEFAULTS | {
    "_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct",
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "attn_implementation": "flash_attention_2",
    "torch_dtype": "bfloat16",
    "vocab_size": VOCAB,
    "hidden_size": 48,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": None,
    "use_sliding_window": False,
    "sliding_window": None,
    "max_window_layers": 2,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "use_cache": True,
}
INTERNVIT_CONFIG = {
    "architectures": ["InternVisionModel"],
    "model_type": "intern_vit_6b",
    "hidden_size": VISION_HIDDEN,
    "intermediate_size": VISION_MLP,
    "num_hidden_layers": VISION_LAYERS,
    "num_attention_heads": VISION_HEADS,
    "image_size": TILE,
    "patch_size": PATCH,
    "num_channels": 3,
    "hidden_act": "gelu",
    "norm_type": "layer_norm",
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "qk_normalization": False,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "drop_path_rate": 0.1,
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "use_flash_attn": True,
    "torch_dtype": "bfloat16",
}
AIMV2_CONFIG = SERIALISED_DEFAULTS | {
    "_name_or_path": "apple/aimv2-huge-patch14-448",
    "auto_map": {"AutoConfig": "configuration_aimv2.AIMv2Config", "AutoModel": "modeling_aimv2.AIMv2Model"},
    "tie_word_embeddings": True,
    "architectures": ["AIMv2Model"],
    "model_type": "aimv2",
    "hidden_size": VISION_HIDDEN,
    "intermediate_size": VISION_MLP,
    "num_hidden_layers": VISION_LAYERS,
    "num_attention_heads": VISION_HEADS,
    "image_size": TILE,
    "patch_size": PATCH,
    "num_channels": 3,
    "rms_norm_eps": 1e-5,
    "qkv_bias": False,
    "use_bias": False,
    "projection_dropout": 0.0,
    "torch_dtype": "float32",
}


def _chat_config(vision: dict, tie: bool) -> dict:
    # SAIL-VL 1.5/1.6 (AIMv2) ship SailVLModel in modeling_sailvl.py; the InternViT releases follow InternVL-chat.
    if vision["model_type"] == "aimv2":
        name, auto_map = (
            "SailVLModel",
            {
                "AutoConfig": "configuration_sailvl.SailVLConfig",
                "AutoModel": "modeling_sailvl.SailVLModel",
                "AutoModelForCausalLM": "modeling_sailvl.SailVLModel",
            },
        )
    else:
        name, auto_map = (
            "InternVLChatModel",
            {
                "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                "AutoModel": "modeling_internvl_chat.InternVLChatModel",
            },
        )
    return {
        "architectures": [name],
        "auto_map": auto_map,
        "model_type": "internvl_chat",
        "pad2square": False,
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "vision_config": vision,
        "llm_config": LLM_CONFIG | {"tie_word_embeddings": tie},
        "downsample_ratio": RATIO,
        "select_layer": -1,
        "force_image_size": TILE,
        "ps_version": "v2",
        "template": "sailvl-chat",
        "dynamic_image_size": True,
        "use_thumbnail": True,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": 12,
        "tie_word_embeddings": tie,
        "torch_dtype": "bfloat16",
    }


def _internvit_weights(randn) -> dict:
    c, n = VISION_HIDDEN, (TILE // PATCH) ** 2
    w = {
        "vision_model.embeddings.class_embedding": randn(1, 1, c),
        "vision_model.embeddings.position_embedding": randn(1, n + 1, c),
        "vision_model.embeddings.patch_embedding.weight": randn(c, 3, PATCH, PATCH),
        "vision_model.embeddings.patch_embedding.bias": randn(c),
    }
    for i in range(VISION_LAYERS):
        pre = f"vision_model.encoder.layers.{i}."
        w |= {
            pre + "attn.qkv.weight": randn(3 * c, c),
            pre + "attn.qkv.bias": randn(3 * c),
            pre + "attn.proj.weight": randn(c, c),
            pre + "attn.proj.bias": randn(c),
            pre + "mlp.fc1.weight": randn(VISION_MLP, c),
            pre + "mlp.fc1.bias": randn(VISION_MLP),
            pre + "mlp.fc2.weight": randn(c, VISION_MLP),
            pre + "mlp.fc2.bias": randn(c),
            pre + "norm1.weight": 1 + randn(c),
            pre + "norm1.bias": randn(c),
            pre + "norm2.weight": 1 + randn(c),
            pre + "norm2.bias": randn(c),
            pre + "ls1": randn(c),
            pre + "ls2": randn(c),
        }
    return w


def _aimv2_weights(randn) -> dict:
    c, n = VISION_HIDDEN, (TILE // PATCH) ** 2
    w = {
        "vision_model.preprocessor.patchifier.proj.weight": randn(c, 3, PATCH, PATCH),
        "vision_model.preprocessor.patchifier.proj.bias": randn(c),
        "vision_model.preprocessor.patchifier.norm.weight": 1 + randn(c),
        "vision_model.preprocessor.pos_embed": randn(1, n, c),
        "vision_model.trunk.post_trunk_norm.weight": 1 + randn(c),
    }
    for i in range(VISION_LAYERS):
        pre = f"vision_model.trunk.blocks.{i}."
        w |= {
            pre + "attn.qkv.weight": randn(3 * c, c),
            pre + "attn.proj.weight": randn(c, c),
            pre + "mlp.fc1.weight": randn(VISION_MLP, c),
            pre + "mlp.fc2.weight": randn(c, VISION_MLP),
            pre + "mlp.fc3.weight": randn(VISION_MLP, c),
            pre + "norm_1.weight": 1 + randn(c),
            pre + "norm_2.weight": 1 + randn(c),
        }
    return w


def _plain_qwen2(tie: bool) -> Qwen2ForCausalLM:
    # The remote code runs flash-attention on GPU; the reference is the eager fp32 equivalent.
    fields = {k: v for k, v in LLM_CONFIG.items() if k not in ("attn_implementation", "torch_dtype")}
    config = Qwen2Config(**(fields | {"tie_word_embeddings": tie}))
    config._attn_implementation = "eager"
    return Qwen2ForCausalLM(config).eval()


def _llm_and_projector_weights(randn, tie: bool) -> dict:
    llm = _plain_qwen2(tie)
    w = {f"language_model.{k}": randn(*v.shape) for k, v in llm.state_dict().items()}
    if tie:
        w.pop("language_model.lm_head.weight")  # tied: saved once, as the embedding
    merged, d = VISION_HIDDEN * int(1 / RATIO) ** 2, LLM_CONFIG["hidden_size"]
    return w | {
        "mlp1.0.weight": 1 + randn(merged),
        "mlp1.0.bias": randn(merged),
        "mlp1.1.weight": randn(d, merged),
        "mlp1.1.bias": randn(d),
        "mlp1.3.weight": randn(d, d),
        "mlp1.3.bias": randn(d),
    }


def _write_remote(directory, kind: str, tie: bool) -> dict:
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return 0.2 * torch.randn(*shape, generator=gen)

    vision = _internvit_weights(randn) if kind == "internvit" else _aimv2_weights(randn)
    weights = vision | _llm_and_projector_weights(randn, tie)
    directory.mkdir()
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    vision_config = INTERNVIT_CONFIG if kind == "internvit" else AIMV2_CONFIG
    (directory / "config.json").write_text(json.dumps(_chat_config(vision_config, tie)))
    # The released configs leave <IMG_CONTEXT> to the tokenizer; its id comes from tokenizer_config.json.
    token = {
        "content": "<IMG_CONTEXT>",
        "special": True,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
    }
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"added_tokens_decoder": {str(IMG_CONTEXT_ID): token}})
    )
    return weights


# ---- reference forward, following the released remote code ----


def _attention(x, qkv_w, qkv_b, proj_w, proj_b, heads):
    b, n, c = x.shape
    qkv = F.linear(x, qkv_w, qkv_b).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    attn = ((q * (c // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
    return F.linear((attn @ v).transpose(1, 2).reshape(b, n, c), proj_w, proj_b)


def _internvit(w, pixels):
    eps = INTERNVIT_CONFIG["layer_norm_eps"]
    x = F.conv2d(pixels, w["vision_model.embeddings.patch_embedding.weight"],
                 w["vision_model.embeddings.patch_embedding.bias"], stride=PATCH)  # fmt: skip
    x = x.flatten(2).transpose(1, 2)
    cls = w["vision_model.embeddings.class_embedding"].expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + w["vision_model.embeddings.position_embedding"]
    for i in range(VISION_LAYERS):
        p = f"vision_model.encoder.layers.{i}."
        h = F.layer_norm(x, (VISION_HIDDEN,), w[p + "norm1.weight"], w[p + "norm1.bias"], eps)
        h = _attention(h, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"], w[p + "attn.proj.weight"],
                       w[p + "attn.proj.bias"], VISION_HEADS)  # fmt: skip
        x = x + h * w[p + "ls1"]
        h = F.layer_norm(x, (VISION_HIDDEN,), w[p + "norm2.weight"], w[p + "norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"])),
                     w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])  # fmt: skip
        x = x + h * w[p + "ls2"]
    return x[:, 1:]  # InternVLChatModel.extract_feature drops the CLS token


def _rms(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _aimv2(w, pixels):
    eps = AIMV2_CONFIG["rms_norm_eps"]
    x = F.conv2d(pixels, w["vision_model.preprocessor.patchifier.proj.weight"],
                 w["vision_model.preprocessor.patchifier.proj.bias"], stride=PATCH)  # fmt: skip
    x = _rms(x.flatten(2).transpose(1, 2), w["vision_model.preprocessor.patchifier.norm.weight"], eps)
    x = x + w["vision_model.preprocessor.pos_embed"]
    for i in range(VISION_LAYERS):
        p = f"vision_model.trunk.blocks.{i}."
        h = _rms(x, w[p + "norm_1.weight"], eps)
        x = x + _attention(h, w[p + "attn.qkv.weight"], None, w[p + "attn.proj.weight"], None, VISION_HEADS)
        h = _rms(x, w[p + "norm_2.weight"], eps)
        h = F.silu(F.linear(h, w[p + "mlp.fc1.weight"])) * F.linear(h, w[p + "mlp.fc3.weight"])
        x = x + F.linear(h, w[p + "mlp.fc2.weight"])
    return _rms(x, w["vision_model.trunk.post_trunk_norm.weight"], eps)


def _pixel_shuffle(x, scale):
    # InternVLChatModel.pixel_shuffle with ps_version "v2".
    n, width, height, c = x.size()
    x = x.view(n, width, int(height * scale), int(c / scale)).permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(height * scale), int(width * scale), int(c / (scale * scale)))
    return x.permute(0, 2, 1, 3).contiguous()


def _reference_logits(w, kind, tie, input_ids, pixels):
    vit = _internvit(w, pixels) if kind == "internvit" else _aimv2(w, pixels)
    side = int(vit.shape[1] ** 0.5)
    vit = _pixel_shuffle(vit.reshape(vit.shape[0], side, side, -1).contiguous(), RATIO)
    vit = vit.reshape(vit.shape[0], -1, vit.shape[-1])
    vit = F.layer_norm(vit, (vit.shape[-1],), w["mlp1.0.weight"], w["mlp1.0.bias"])  # nn.LayerNorm, eps 1e-5
    vit = F.linear(
        F.gelu(F.linear(vit, w["mlp1.1.weight"], w["mlp1.1.bias"])), w["mlp1.3.weight"], w["mlp1.3.bias"]
    )

    llm = _plain_qwen2(tie)
    llm.load_state_dict(
        {k.removeprefix("language_model."): v for k, v in w.items() if k.startswith("language_model.")},
        strict=not tie,
    )
    if tie:
        llm.tie_weights()
        assert torch.equal(llm.lm_head.weight, w["language_model.model.embed_tokens.weight"])
    embeds = llm.get_input_embeddings()(input_ids).clone()
    selected = input_ids == IMG_CONTEXT_ID
    embeds[selected] = vit.reshape(-1, vit.shape[-1])
    return llm(inputs_embeds=embeds).logits


@pytest.mark.parametrize(("kind", "tie"), [("internvit", False), ("aimv2", True)])
def test_converted_remote_checkpoint_matches_the_reference_forward(tmp_path, kind, tie):
    weights = _write_remote(tmp_path / "remote", kind, tie)
    convert_checkpoint(tmp_path / "remote", tmp_path / "hf", "sailvl-remote", "hf")
    model = load_model(tmp_path / "hf")
    assert model.config.image_token_id == IMG_CONTEXT_ID

    gen = torch.Generator().manual_seed(1)
    tokens = (TILE // PATCH) ** 2 // 4
    n_tiles = 2
    ids = [1, 3, 9] + [IMG_CONTEXT_ID] * (tokens * n_tiles) + [11, 12, 2]
    input_ids = torch.tensor([ids])
    pixels = torch.randn(n_tiles, 3, TILE, TILE, generator=gen)
    with torch.no_grad():
        ours = model(input_ids=input_ids, pixel_values=pixels).logits
        reference = _reference_logits(weights, kind, tie, input_ids, pixels)
    assert ours.shape == reference.shape == (1, len(ids), VOCAB)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    # The image positions carry signal: a different image moves the logits.
    with torch.no_grad():
        other = model(input_ids=input_ids, pixel_values=pixels.flip(0)).logits
    assert (other - ours).abs().max() > 1e-3


@pytest.mark.parametrize(("kind", "tie"), [("internvit", False), ("aimv2", True)])
def test_hf_to_remote_writes_the_released_names_and_shapes(tmp_path, kind, tie):
    from safetensors.torch import load_file

    weights = _write_remote(tmp_path / "remote", kind, tie)
    convert_checkpoint(tmp_path / "remote", tmp_path / "hf", "sailvl-remote", "hf")
    convert_checkpoint(tmp_path / "hf", tmp_path / "back", "hf", "sailvl-remote")
    back = load_file(tmp_path / "back" / "model.safetensors")
    assert sorted(back) == sorted(weights)
    for name, tensor in weights.items():
        assert torch.equal(back[name], tensor), name
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    released = _chat_config(INTERNVIT_CONFIG if kind == "internvit" else AIMV2_CONFIG, tie)
    for key in (
        "model_type",
        "architectures",
        "auto_map",
        "downsample_ratio",
        "select_layer",
        "ps_version",
        "force_image_size",
    ):
        assert config[key] == released[key], key
    for key in ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        assert config["vision_config"][key] == released["vision_config"][key], key
    assert config["llm_config"]["model_type"] == "qwen2"
    assert config["img_context_token_id"] == IMG_CONTEXT_ID
