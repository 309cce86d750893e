"""Presets: published parameter counts on the meta device, tiny geometry, AIMv2 contiguity fix, freezing."""

import pytest
import torch
from _model_helpers import image_inputs, tiny_aimv2_config, tiny_internvl_config

from sailvl.errors import SailvlError
from sailvl.model import (
    PRESETS,
    build_from_config,
    build_model,
    count_parameters,
    get_preset_config,
    image_tokens_per_tile,
    module_alias,
    parameter_groups,
    set_trainable,
)

# Published shapes: InternViT-300M-448px 304.0M; Qwen2.5-1.5B 1.543B (tied); Qwen2.5-7B 7.616B (untied);
# AIMv2-Huge-448 681M (hidden 1536 x 24, SwiGLU 4096); Qwen3-1.7B 1.721B (tied). Projectors from SPEC:
# LayerNorm(4Cv) + Linear(4Cv, D) + Linear(D, D).
EXPECTED = {
    "sailvl-2b": {"vision": 304.0e6, "projector": 8.66e6, "llm": 1.543e9},
    "sailvl-8b": {
        "vision": 304.0e6,
        "projector": 4 * 1024 * 2 + 4096 * 3584 + 3584 + 3584 * 3584 + 3584,
        "llm": 7.616e9,
    },
    "sailvl-1.5-2b": {
        "vision": 681.0e6,
        "projector": 6144 * 2 + 6144 * 1536 + 1536 + 1536 * 1536 + 1536,
        "llm": 1.543e9,
    },
    "sailvl2-2b": {
        "vision": 681.0e6,
        "projector": 6144 * 2 + 6144 * 2048 + 2048 + 2048 * 2048 + 2048,
        "llm": 1.7206e9,
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_big_presets_match_published_counts_on_meta(name):
    model = build_model(name, device="meta")
    assert all(p.is_meta for p in model.parameters())
    counts = count_parameters(model)
    for group, expected in EXPECTED[name].items():
        assert counts[group] == pytest.approx(expected, rel=0.005), (name, group, counts[group])
    assert counts["total"] == counts["vision"] + counts["projector"] + counts["llm"]
    assert image_tokens_per_tile(model.config) == 256
    # <IMG_CONTEXT> in the released tokenizers: Qwen2.5 151667; Qwen3 (SAIL-VL2) 151671, where 151667 is <think>.
    assert model.config.image_token_id == (151671 if name == "sailvl2-2b" else 151667)


def test_tiny_preset_geometry_and_forward(tiny_tokenizer):
    model = build_model("tiny", tokenizer=tiny_tokenizer, seed=0)
    assert model.config.text_config.vocab_size == len(tiny_tokenizer)
    assert model.config.image_token_id == tiny_tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert image_tokens_per_tile(model.config) == 16
    total = count_parameters(model)["total"]
    assert 0.5e6 < total < 1.5e6
    out = model(**image_inputs(model, n_tiles=2))
    assert out.logits.shape == (1, 6 + 32, len(tiny_tokenizer))


def test_seed_makes_builds_reproducible():
    a, b = build_model("tiny", seed=3), build_model("tiny", seed=3)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_unknown_preset_lists_known_names():
    with pytest.raises(SailvlError) as err:
        get_preset_config("sailvl-3b")
    for name in PRESETS:
        assert name in str(err.value)


def test_aimv2_tower_needs_and_gets_the_contiguity_fix():
    from transformers import InternVLForConditionalGeneration

    config = tiny_internvl_config(tiny_aimv2_config(), vocab_size=64, image_token_id=5)
    torch.manual_seed(0)
    bare = InternVLForConditionalGeneration(config).eval()
    inputs = image_inputs(bare)
    with pytest.raises(RuntimeError, match="view size"):
        bare(**inputs)
    fixed = build_from_config(config, seed=0).eval()
    with torch.no_grad():
        logits = fixed(**inputs).logits
    assert logits.shape == (1, 22, 64) and torch.isfinite(logits).all()


def test_module_alias_maps_every_group():
    assert (
        module_alias("model.vision_tower.encoder.layer.0.mlp.fc1.weight")
        == "vision.encoder.layer.0.mlp.fc1.weight"
    )
    assert module_alias("model.multi_modal_projector.linear_1.bias") == "projector.linear_1.bias"
    assert (
        module_alias("model.language_model.layers.1.self_attn.q_proj.weight")
        == "llm.layers.1.self_attn.q_proj.weight"
    )
    assert module_alias("lm_head.weight") == "llm.lm_head.weight"
    with pytest.raises(ValueError):
        module_alias("something.else")


def test_set_trainable_by_glob_and_table_rows():
    model = build_model("tiny", seed=0)
    rows = set_trainable(model, ["projector.*"])
    by_module = {r["module"]: r for r in rows}
    assert [r["module"] for r in rows] == ["vision", "projector", "llm"]
    assert by_module["projector"]["frozen"] == 0 and by_module["projector"]["trainable"] > 0
    assert by_module["vision"]["trainable"] == 0 and by_module["llm"]["trainable"] == 0
    groups = parameter_groups(model)
    assert all(p.requires_grad for _, p in groups["projector"])
    assert not any(p.requires_grad for _, p in groups["vision"] + groups["llm"])

    rows = set_trainable(model, ["vision.encoder.layer.1.*", "llm.*"])
    by_module = {r["module"]: r for r in rows}
    assert 0 < by_module["vision"]["trainable"] < by_module["vision"]["params"]
    assert by_module["llm"]["frozen"] == 0 and by_module["projector"]["trainable"] == 0
    with pytest.raises(SailvlError, match="match no parameter"):
        set_trainable(model, ["projecter.*"])
