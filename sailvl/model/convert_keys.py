"""Weight-name maps between the released SAIL-VL / InternVL-chat layout and transformers' InternVL layout."""

from __future__ import annotations

import re

import torch

# (remote pattern, HF pattern) pairs for 1:1 renames; `{n}` is a layer index. Order matters only for
# readability: every pattern is anchored at both ends.
_COMMON = [
    ("mlp1.0.{p}", "model.multi_modal_projector.layer_norm.{p}"),
    ("mlp1.1.{p}", "model.multi_modal_projector.linear_1.{p}"),
    ("mlp1.3.{p}", "model.multi_modal_projector.linear_2.{p}"),
    ("language_model.lm_head.{p}", "lm_head.{p}"),
    ("language_model.model.{rest}", "model.language_model.{rest}"),
]
_INTERNVIT = [
    ("vision_model.embeddings.class_embedding", "model.vision_tower.embeddings.cls_token"),
    ("vision_model.embeddings.position_embedding", "model.vision_tower.embeddings.position_embeddings"),
    (
        "vision_model.embeddings.patch_embedding.{p}",
        "model.vision_tower.embeddings.patch_embeddings.projection.{p}",
    ),
    (
        "vision_model.encoder.layers.{n}.attn.proj.{p}",
        "model.vision_tower.encoder.layer.{n}.attention.projection_layer.{p}",
    ),
    (
        "vision_model.encoder.layers.{n}.attn.q_norm.{p}",
        "model.vision_tower.encoder.layer.{n}.attention.q_norm.{p}",
    ),
    (
        "vision_model.encoder.layers.{n}.attn.k_norm.{p}",
        "model.vision_tower.encoder.layer.{n}.attention.k_norm.{p}",
    ),
    ("vision_model.encoder.layers.{n}.mlp.fc1.{p}", "model.vision_tower.encoder.layer.{n}.mlp.fc1.{p}"),
    ("vision_model.encoder.layers.{n}.mlp.fc2.{p}", "model.vision_tower.encoder.layer.{n}.mlp.fc2.{p}"),
    (
        "vision_model.encoder.layers.{n}.norm1.{p}",
        "model.vision_tower.encoder.layer.{n}.layernorm_before.{p}",
    ),
    ("vision_model.encoder.layers.{n}.norm2.{p}", "model.vision_tower.encoder.layer.{n}.layernorm_after.{p}"),
    ("vision_model.encoder.layers.{n}.ls1", "model.vision_tower.encoder.layer.{n}.lambda_1"),
    ("vision_model.encoder.layers.{n}.ls2", "model.vision_tower.encoder.layer.{n}.lambda_2"),
]
_AIMV2 = [
    ("vision_model.preprocessor.patchifier.proj.{p}", "model.vision_tower.embeddings.patch_embed.{p}"),
    ("vision_model.preprocessor.patchifier.norm.{p}", "model.vision_tower.embeddings.rms_norm.{p}"),
    (
        "vision_model.trunk.blocks.{n}.attn.proj.{p}",
        "model.vision_tower.encoder.layers.{n}.attention.out_proj.{p}",
    ),
    # AIMv2's SwiGLU computes fc2(silu(fc1(x)) * fc3(x)): fc1 is the gate, fc3 the up projection.
    ("vision_model.trunk.blocks.{n}.mlp.fc1.{p}", "model.vision_tower.encoder.layers.{n}.ffn.gate_proj.{p}"),
    ("vision_model.trunk.blocks.{n}.mlp.fc3.{p}", "model.vision_tower.encoder.layers.{n}.ffn.up_proj.{p}"),
    ("vision_model.trunk.blocks.{n}.mlp.fc2.{p}", "model.vision_tower.encoder.layers.{n}.ffn.down_proj.{p}"),
    ("vision_model.trunk.blocks.{n}.norm_1.{p}", "model.vision_tower.encoder.layers.{n}.rms_norm1.{p}"),
    ("vision_model.trunk.blocks.{n}.norm_2.{p}", "model.vision_tower.encoder.layers.{n}.rms_norm2.{p}"),
    ("vision_model.trunk.post_trunk_norm.{p}", "model.vision_tower.rms_norm.{p}"),
]
# Fused qkv in the remote layout; (remote, HF prefix with {qkv}).
_QKV = {
    "internvit": (
        "vision_model.encoder.layers.{n}.attn.qkv.{p}",
        "model.vision_tower.encoder.layer.{n}.attention.{qkv}_proj.{p}",
    ),
    "aimv2": (
        "vision_model.trunk.blocks.{n}.attn.qkv.{p}",
        "model.vision_tower.encoder.layers.{n}.attention.{qkv}_proj.{p}",
    ),
}
_AIMV2_POS = (
    "vision_model.preprocessor.pos_embed",
    "model.vision_tower.embeddings.position_embedding.weight",
)
_FIELDS = {"n": r"(?P<n>\d+)", "p": r"(?P<p>weight|bias)", "rest": r"(?P<rest>.+)", "qkv": r"(?P<qkv>q|k|v)"}


def _regex(pattern: str) -> re.Pattern:
    escaped = re.escape(pattern)
    for field, group in _FIELDS.items():
        escaped = escaped.replace(re.escape("{" + field + "}"), group)
    return re.compile(f"^{escaped}$")


def _rules(vision_kind: str) -> list[tuple[str, str]]:
    return _COMMON + (_INTERNVIT if vision_kind == "internvit" else _AIMV2)


def _rename(name: str, rules: list[tuple[str, str]], reverse: bool) -> str | None:
    for remote, hf in rules:
        src, dst = (hf, remote) if reverse else (remote, hf)
        match = _regex(src).match(name)
        if match:
            return dst.format(**match.groupdict())
    return None


def remote_to_hf(state: dict[str, torch.Tensor], vision_kind: str) -> dict[str, torch.Tensor]:
    """Rename (and split fused qkv of) a remote-layout state dict; unknown keys raise ValueError."""
    rules, out = _rules(vision_kind), {}
    qkv_remote, qkv_hf = _QKV[vision_kind]
    qkv_re = _regex(qkv_remote)
    for name, tensor in state.items():
        match = qkv_re.match(name)
        if match:
            for part, chunk in zip("qkv", tensor.chunk(3, dim=0), strict=True):
                out[qkv_hf.format(qkv=part, **match.groupdict())] = chunk.clone()
            continue
        if vision_kind == "aimv2" and name == _AIMV2_POS[0]:
            out[_AIMV2_POS[1]] = tensor.reshape(tensor.shape[-2], tensor.shape[-1])
            continue
        new = _rename(name, rules, reverse=False)
        if new is None:
            raise ValueError(f"weight {name!r} has no mapping from the sailvl-remote layout")
        out[new] = tensor
    return out


def hf_to_remote(state: dict[str, torch.Tensor], vision_kind: str) -> dict[str, torch.Tensor]:
    """Rename (and fuse q/k/v of) an HF-layout state dict into the remote layout; unknown keys raise ValueError."""
    rules, out = _rules(vision_kind), {}
    qkv_remote, qkv_hf = _QKV[vision_kind]
    qkv_re = _regex(qkv_hf)
    pending: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, tensor in state.items():
        match = qkv_re.match(name)
        if match:
            key = (match["n"], match["p"])
            pending.setdefault(key, {})[match["qkv"]] = tensor
            continue
        if vision_kind == "aimv2" and name == _AIMV2_POS[1]:
            out[_AIMV2_POS[0]] = tensor.unsqueeze(0)
            continue
        new = _rename(name, rules, reverse=True)
        if new is None:
            raise ValueError(f"weight {name!r} has no mapping to the sailvl-remote layout")
        out[new] = tensor
    for (n, p), parts in pending.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"layer {n} {p}: q/k/v projections are incomplete ({sorted(parts)})")
        out[qkv_remote.format(n=n, p=p)] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out
