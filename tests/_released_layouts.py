"""Tiny checkpoints laid out as each released SAIL-VL family ships them, and a plain-PyTorch reference forward.

Written here, without sailvl's writer, from the released files (see /work/notes/convert.md for sources):
- sail-vl      SAIL-VL-2B / 8B: InternViT (`intern_vit_6b`) + Qwen2.5, SailVLModel / configuration_sailvl.
- sail-vl-1.5  SAIL-VL-1d5 / 1d6: AIMv2 (`aimv2`) + Qwen2.5, SailVLModel, model_type internvl_chat.
- sail-vl2     SAIL-VL2-2B / 8B / -Thinking: SAILViT (`sailvit`, AIMv2 code: preprocessor.*, trunk.blocks.N.*,
               trunk.post_trunk_norm) + Qwen3 (tied embeddings, lm_head stored anyway), SAILVLModel /
               SAILVLConfig, model_type sailvl, template univl-chat, ps_version v2, a SAILVLImageProcessor
               preprocessor_config.json with max_dynamic_patch 10 (config.json says 12).
Tokenizers follow the released id order: a Qwen2.5-like one puts <IMG_CONTEXT> right after the ChatML tokens;
the Qwen3-like one has <think> / </think> there (where Qwen2.5's <IMG_CONTEXT> would be) and <IMG_CONTEXT> later.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

TILE, PATCH, RATIO = 112, 14, 0.5
VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
IMAGE_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
CHATML = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen3's tokenizer adds tool and think tokens before the image tokens: the Qwen2.5 position of <IMG_CONTEXT>
# (right after <img>, </img>) holds <think> here.
QWEN3_EXTRA = ["<tool_call>", "</tool_call>", "<think>", "</think>"]
# What transformers 4.x serialises into every sub-config of the released checkpoints (SAIL-VL-1.6-8B's
# config.json carries these in llm_config and vision_config).
SERIALISED = {
    "add_cross_attention": False, "bad_words_ids": None, "chunk_size_feed_forward": 0, "diversity_penalty": 0.0,
    "do_sample": False, "early_stopping": False, "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "is_decoder": False, "is_encoder_decoder": False,
    "length_penalty": 1.0, "max_length": 20, "min_length": 0, "num_beams": 1, "output_attentions": False,
    "output_hidden_states": False, "pruned_heads": {}, "return_dict": True, "tf_legacy_loss": False,
    "tie_encoder_decoder": False, "torchscript": False, "transformers_version": "4.51.3", "use_bfloat16": False,
}  # fmt: skip

FAMILY_SPECS = {
    "sail-vl": dict(
        vision_type="intern_vit_6b", llm="qwen2", architectures=["SailVLModel"], model_type="internvl_chat",
        auto_map={"AutoConfig": "configuration_sailvl.SailVLConfig", "AutoModel": "modeling_sailvl.SailVLModel",
                  "AutoModelForCausalLM": "modeling_sailvl.SailVLModel"},
        template="sailvl-chat", tie=False, stored_head=True, select_layer=-1,
    ),
    "sail-vl-1.5": dict(
        vision_type="aimv2", llm="qwen2", architectures=["SailVLModel"], model_type="internvl_chat",
        auto_map={"AutoConfig": "configuration_sailvl.SailVLConfig", "AutoModel": "modeling_sailvl.SailVLModel",
                  "AutoModelForCausalLM": "modeling_sailvl.SailVLModel"},
        template="sailvl-chat", tie=True, stored_head=False, select_layer=-1,
    ),
    "sail-vl2": dict(
        vision_type="sailvit", llm="qwen3", architectures=["SAILVLModel"], model_type="sailvl",
        auto_map={"AutoConfig": "configuration_sailvl.SAILVLConfig", "AutoModel": "modeling_sailvl.SAILVLModel"},
        template="univl-chat", tie=True, stored_head=True, select_layer=-1,
    ),
}  # fmt: skip


def corpus() -> list[str]:
    words = ["What colour is the square?", "It is red.", "Describe the image.", "A blue circle.", "user"]
    return words + [
        "assistant",
        "system",
        "Image-1: Image-2:",
        "你是由抖音内容理解组开发的多模态大模型，英文名叫UniVL",
    ]


def released_tokenizer(llm: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with the release's special-token order for a Qwen2.5 or Qwen3 LLM."""
    specials = CHATML + (QWEN3_EXTRA if llm == "qwen3" else []) + IMAGE_TOKENS
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=CHATML[0],
        eos_token=CHATML[2],
        additional_special_tokens=specials[1:],
        clean_up_tokenization_spaces=False,
    )


def _vision_config(spec: dict) -> dict:
    common = SERIALISED | VISION | {"image_size": TILE, "patch_size": PATCH, "num_channels": 3}
    if spec["vision_type"] == "intern_vit_6b":
        return common | {
            "architectures": ["InternVisionModel"], "model_type": "intern_vit_6b", "hidden_act": "gelu",
            "norm_type": "layer_norm", "layer_norm_eps": 1e-6, "qkv_bias": True, "qk_normalization": False,
            "initializer_factor": 1.0, "drop_path_rate": 0.1, "use_flash_attn": True,
        }  # fmt: skip
    name = "SAILViTModel" if spec["vision_type"] == "sailvit" else "AIMv2Model"
    return common | {
        "architectures": [name], "model_type": spec["vision_type"], "rms_norm_eps": 1e-5,
        "qkv_bias": False, "use_bias": False, "attention_dropout": 0.0, "projection_dropout": 0.0,
    }  # fmt: skip


def _llm_config(spec: dict, vocab: int) -> dict:
    arch = "Qwen3ForCausalLM" if spec["llm"] == "qwen3" else "Qwen2ForCausalLM"
    config = SERIALISED | {
        "architectures": [arch], "model_type": spec["llm"], "vocab_size": vocab, "hidden_size": 48,
        "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "hidden_act": "silu", "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": None, "tie_word_embeddings": spec["tie"], "attn_implementation": "flash_attention_2",
        "torch_dtype": "bfloat16", "bos_token_id": 0, "eos_token_id": 2, "use_cache": True,
        "use_sliding_window": False, "sliding_window": None, "max_window_layers": 2,
    }  # fmt: skip
    if spec["llm"] == "qwen3":
        config |= {"head_dim": 12, "attention_bias": False}
    return config


def released_config(family: str, vocab: int, **overrides) -> dict:
    spec = FAMILY_SPECS[family] | overrides
    config = {
        "architectures": spec["architectures"], "auto_map": spec["auto_map"], "model_type": spec["model_type"],
        "vision_config": _vision_config(spec), "llm_config": _llm_config(spec, vocab),
        "downsample_ratio": RATIO, "select_layer": spec["select_layer"], "force_image_size": TILE,
        "ps_version": spec.get("ps_version", "v2"), "template": spec["template"], "dynamic_image_size": True,
        "use_thumbnail": True, "min_dynamic_patch": 1, "max_dynamic_patch": 12, "pad2square": False,
        "use_backbone_lora": 0, "use_llm_lora": 0, "tie_word_embeddings": spec["tie"],
        "torch_dtype": "bfloat16", "transformers_version": "4.51.3",
    }  # fmt: skip
    return config


def _plain_llm(config: dict):
    fields = {
        k: v for k, v in config.items() if k not in ("attn_implementation", "torch_dtype", "architectures")
    }
    cls, model_cls = (
        (Qwen3Config, Qwen3ForCausalLM)
        if config["model_type"] == "qwen3"
        else (Qwen2Config, Qwen2ForCausalLM)
    )
    llm_config = cls(**fields)
    llm_config._attn_implementation = "eager"
    return model_cls(llm_config).eval()


def _vision_weights(spec: dict, randn) -> dict:
    c, m, n = VISION["hidden_size"], VISION["intermediate_size"], (TILE // PATCH) ** 2
    if spec["vision_type"] == "intern_vit_6b":
        w = {
            "vision_model.embeddings.class_embedding": randn(1, 1, c),
            "vision_model.embeddings.position_embedding": randn(1, n + 1, c),
            "vision_model.embeddings.patch_embedding.weight": randn(c, 3, PATCH, PATCH),
            "vision_model.embeddings.patch_embedding.bias": randn(c),
        }
        for i in range(VISION["num_hidden_layers"]):
            p = f"vision_model.encoder.layers.{i}."
            w |= {p + "attn.qkv.weight": randn(3 * c, c), p + "attn.qkv.bias": randn(3 * c),
                  p + "attn.proj.weight": randn(c, c), p + "attn.proj.bias": randn(c),
                  p + "mlp.fc1.weight": randn(m, c), p + "mlp.fc1.bias": randn(m),
                  p + "mlp.fc2.weight": randn(c, m), p + "mlp.fc2.bias": randn(c),
                  p + "norm1.weight": 1 + randn(c), p + "norm1.bias": randn(c),
                  p + "norm2.weight": 1 + randn(c), p + "norm2.bias": randn(c),
                  p + "ls1": randn(c), p + "ls2": randn(c)}  # fmt: skip
        return w
    w = {
        "vision_model.preprocessor.patchifier.proj.weight": randn(c, 3, PATCH, PATCH),
        "vision_model.preprocessor.patchifier.proj.bias": randn(c),
        "vision_model.preprocessor.patchifier.norm.weight": 1 + randn(c),
        "vision_model.preprocessor.pos_embed": randn(1, n, c),
        "vision_model.trunk.post_trunk_norm.weight": 1 + randn(c),
    }
    for i in range(VISION["num_hidden_layers"]):
        p = f"vision_model.trunk.blocks.{i}."
        w |= {p + "attn.qkv.weight": randn(3 * c, c), p + "attn.proj.weight": randn(c, c),
              p + "mlp.fc1.weight": randn(m, c), p + "mlp.fc2.weight": randn(c, m),
              p + "mlp.fc3.weight": randn(m, c), p + "norm_1.weight": 1 + randn(c),
              p + "norm_2.weight": 1 + randn(c)}  # fmt: skip
    return w


def write_release(directory: Path, family: str, seed: int = 0, **overrides) -> dict:
    """Write a tiny `family` release into `directory`; returns {"weights", "config", "tokenizer"}."""
    spec = FAMILY_SPECS[family] | overrides
    tokenizer = released_tokenizer(spec["llm"])
    config = released_config(family, len(tokenizer), **overrides)
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return 0.2 * torch.randn(*shape, generator=gen)

    llm = _plain_llm(config["llm_config"])
    weights = _vision_weights(spec, randn)
    weights |= {f"language_model.{k}": randn(*v.shape) for k, v in llm.state_dict().items()}
    if spec["tie"]:
        embed = weights["language_model.model.embed_tokens.weight"]
        if spec["stored_head"]:  # SAIL-VL2 stores the tied head: the same tensor as the embedding
            weights["language_model.lm_head.weight"] = embed.clone()
        else:
            weights.pop("language_model.lm_head.weight")
    merged, d = VISION["hidden_size"] * 4, config["llm_config"]["hidden_size"]
    weights |= {
        "mlp1.0.weight": 1 + randn(merged), "mlp1.0.bias": randn(merged),
        "mlp1.1.weight": randn(d, merged), "mlp1.1.bias": randn(d),
        "mlp1.3.weight": randn(d, d), "mlp1.3.bias": randn(d),
    }  # fmt: skip
    directory.mkdir(parents=True)
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(directory)
    if spec["vision_type"] == "sailvit":
        image = {
            "image_processor_type": "SAILVLImageProcessor", "auto_map": {
                "AutoImageProcessor": "image_processing_sailvl.SAILVLImageProcessor",
                "AutoProcessor": "processing_sailvl.SAILVLProcessor"},
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
            "image_size": TILE, "patch_size": PATCH, "max_dynamic_patch": 10, "use_msac": False,
            "processor_class": "SAILVLProcessor",
        }  # fmt: skip
        (directory / "preprocessor_config.json").write_text(json.dumps(image, indent=2))
    for code in ("configuration_sailvl.py", "modeling_sailvl.py"):
        (directory / code).write_text("raise RuntimeError('remote code must never run')\n")
    return {"weights": weights, "config": config, "tokenizer": tokenizer}


# ---- reference forward, following the released remote code ----


def _attention(x, qkv_w, qkv_b, proj_w, proj_b, heads):
    b, n, c = x.shape
    qkv = F.linear(x, qkv_w, qkv_b).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    attn = ((q * (c // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
    return F.linear((attn @ v).transpose(1, 2).reshape(b, n, c), proj_w, proj_b)


def _internvit(w, pixels, layer: int):
    heads, c = VISION["num_attention_heads"], VISION["hidden_size"]
    x = F.conv2d(pixels, w["vision_model.embeddings.patch_embedding.weight"],
                 w["vision_model.embeddings.patch_embedding.bias"], stride=PATCH)  # fmt: skip
    x = x.flatten(2).transpose(1, 2)
    cls = w["vision_model.embeddings.class_embedding"].expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + w["vision_model.embeddings.position_embedding"]
    states = [x]
    for i in range(VISION["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        h = F.layer_norm(x, (c,), w[p + "norm1.weight"], w[p + "norm1.bias"], 1e-6)
        h = _attention(h, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"], w[p + "attn.proj.weight"],
                       w[p + "attn.proj.bias"], heads)  # fmt: skip
        x = x + h * w[p + "ls1"]
        h = F.layer_norm(x, (c,), w[p + "norm2.weight"], w[p + "norm2.bias"], 1e-6)
        h = F.linear(F.gelu(F.linear(h, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"])),
                     w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])  # fmt: skip
        x = x + h * w[p + "ls2"]
        states.append(x)
    # InternVLChatModel.extract_feature: last_hidden_state for -1, else hidden_states[select_layer]; CLS dropped.
    return states[layer][:, 1:]


def _rms(x, weight, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _aimv2(w, pixels):
    """AIMv2 / SAILViT trunk: patchify (conv + RMSNorm) + position table, pre-norm blocks, SwiGLU, final norm."""
    x = F.conv2d(pixels, w["vision_model.preprocessor.patchifier.proj.weight"],
                 w["vision_model.preprocessor.patchifier.proj.bias"], stride=PATCH)  # fmt: skip
    x = _rms(x.flatten(2).transpose(1, 2), w["vision_model.preprocessor.patchifier.norm.weight"])
    x = x + w["vision_model.preprocessor.pos_embed"]
    for i in range(VISION["num_hidden_layers"]):
        p = f"vision_model.trunk.blocks.{i}."
        x = x + _attention(_rms(x, w[p + "norm_1.weight"]), w[p + "attn.qkv.weight"], None,
                           w[p + "attn.proj.weight"], None, VISION["num_attention_heads"])  # fmt: skip
        h = _rms(x, w[p + "norm_2.weight"])
        h = F.silu(F.linear(h, w[p + "mlp.fc1.weight"])) * F.linear(h, w[p + "mlp.fc3.weight"])
        x = x + F.linear(h, w[p + "mlp.fc2.weight"])
    return _rms(x, w["vision_model.trunk.post_trunk_norm.weight"])


def pixel_shuffle(x, scale, version: str):
    """InternVL's pixel_shuffle on `[n, w, h, c]`; "v1" leaves the spatial axes transposed, "v2" swaps back."""
    n, width, height, c = x.size()
    x = x.view(n, width, int(height * scale), int(c / scale)).permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(height * scale), int(width * scale), int(c / (scale * scale)))
    return x if version == "v1" else x.permute(0, 2, 1, 3).contiguous()


def reference_logits(release: dict, input_ids, pixels):
    """Logits of the released model (`write_release` output) on `input_ids` with `pixels` tiles, fp32."""
    w, config = release["weights"], release["config"]
    if config["vision_config"]["model_type"] == "intern_vit_6b":
        vit = _internvit(w, pixels, config["select_layer"])
    else:
        vit = _aimv2(w, pixels)
    side = int(vit.shape[1] ** 0.5)
    vit = pixel_shuffle(vit.reshape(vit.shape[0], side, side, -1).contiguous(), RATIO, config["ps_version"])
    vit = vit.reshape(vit.shape[0], -1, vit.shape[-1])
    vit = F.layer_norm(vit, (vit.shape[-1],), w["mlp1.0.weight"], w["mlp1.0.bias"])  # nn.LayerNorm, eps 1e-5
    vit = F.linear(
        F.gelu(F.linear(vit, w["mlp1.1.weight"], w["mlp1.1.bias"])), w["mlp1.3.weight"], w["mlp1.3.bias"]
    )
    llm = _plain_llm(config["llm_config"])
    llm_state = {
        k.removeprefix("language_model."): v for k, v in w.items() if k.startswith("language_model.")
    }
    llm.load_state_dict(llm_state, strict=not config["tie_word_embeddings"] or "lm_head.weight" in llm_state)
    if config["tie_word_embeddings"]:
        llm.tie_weights()
    embeds = llm.get_input_embeddings()(input_ids).clone()
    context_id = release["tokenizer"].convert_tokens_to_ids("<IMG_CONTEXT>")
    embeds[input_ids == context_id] = vit.reshape(-1, vit.shape[-1])
    return llm(inputs_embeds=embeds).logits


# ---- the released conversation.py's MPT rendering, for byte-for-byte template checks ----


def released_prompt(system_message: str, turns: list[tuple[str, str | None]]) -> str:
    """What the released conversation.py renders for an MPT-style template (sailvl-chat / univl-chat):
    system_template `<|im_start|>system\\n{system_message}`, roles `<|im_start|>user\\n` /
    `<|im_start|>assistant\\n`, sep `<|im_end|>`: system + sep, then role + message + sep per turn, a bare
    role for the open assistant turn (message None)."""
    roles = {"user": "<|im_start|>user\n", "assistant": "<|im_start|>assistant\n"}
    out = "<|im_start|>system\n" + system_message + "<|im_end|>"
    for role, message in turns:
        out += roles[role] + message + "<|im_end|>" if message else roles[role]
    return out


def released_image_block(num_tiles: int, tokens_per_tile: int) -> str:
    """modeling_sailvl.chat(): each `<image>` becomes `<img>` + `<IMG_CONTEXT>` * (tokens * tiles) + `</img>`."""
    return "<img>" + "<IMG_CONTEXT>" * (tokens_per_tile * num_tiles) + "</img>"


def write_released_tower(directory: Path, vision_type: str = "sailvit", seed: int = 0) -> dict:
    """A standalone released tower (SAILViT-Large / -Huge style: the tower's remote code, weights without the
    `vision_model.` prefix). Returns the weights with that prefix, for `tower_reference`."""
    spec = {"vision_type": vision_type}
    gen = torch.Generator().manual_seed(seed)
    weights = _vision_weights(spec, lambda *shape: 0.2 * torch.randn(*shape, generator=gen))
    directory.mkdir(parents=True)
    save_file(
        {k.removeprefix("vision_model."): v for k, v in weights.items()}, str(directory / "model.safetensors")
    )
    config = _vision_config(spec) | {"auto_map": {"AutoConfig": "configuration_sailvit.SAILViTConfig"}}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return weights


def tower_reference(weights: dict, pixels):
    """The released tower's last hidden state (InternViT keeps its CLS token here)."""
    if "vision_model.embeddings.class_embedding" in weights:
        return _internvit(weights, pixels, -1)
    return _aimv2(weights, pixels)
