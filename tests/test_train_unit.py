"""Unit tests of the training engine pieces: recipes, schedules, param groups, checkpoints listing, FLOPs."""

import json

import pytest
import torch
from torch import nn

from sailvl.errors import ConfigError
from sailvl.train.checkpoint import latest_checkpoint, list_checkpoints
from sailvl.train.flops import llm_linear_flops, train_step_flops
from sailvl.train.metrics import MetricsLogger
from sailvl.train.optim import build_optimizer, build_param_groups, lr_factor, set_lr
from sailvl.train.recipe_files import RECIPES_DIR, load_recipe

SHIPPED = ["sailvit", "sailvl-2b", "vit-transfer", "tiny-sailvit", "tiny-sailvl", "tiny-vit-transfer"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_validate(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert all(s.trainable for s in recipe.stages)


def test_sailvit_stages_follow_spec():
    r = load_recipe("sailvit")
    assert [(s.trainable, s.lr) for s in r.stages] == [
        (["projector.*"], 2e-4),
        (["vision.*", "projector.*"], 2e-5),
        (["vision.*", "projector.*", "llm.*"], 1e-5),
    ]
    assert [s.budget.samples for s in r.stages] == [8_000_000, 6_700_000, 36_500_000]
    b = load_recipe("sailvl-2b")
    assert [s.budget.tokens for s in b.stages[:2]] == [131_000_000_000, 524_000_000_000]
    assert [s.budget.samples for s in b.stages[2:]] == [21_000_000, 12_000_000, 3_500_000]


def test_tiny_recipe_derives_from_base_and_overrides(tmp_path):
    r = load_recipe("tiny-sailvit", ["vars.world=/w", "vars.model_dir=/m", "stages.0.lr=0.5"])
    assert r.model.path == "/m" and r.model.vision is None
    assert r.stages[0].lr == 0.5 and r.stages[0].trainable == ["projector.*"]  # inherited from sailvit
    assert r.stages[0].budget.steps == 40 and r.stages[0].budget.samples is None
    data = r.stage_data(r.stages[2])
    assert data["max_tokens"] == 512
    assert {s["path"] for s in data["sources"]} == {"/w/pretrain.jsonl", "/w/sft.jsonl"}
    assert all(s["max_tiles"] == 1 for s in data["sources"])


def test_user_recipe_base_relative_and_stage_drop(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "base: tiny-sailvit\nname: mine\nstages:\n  - {name: fine-grained-alignment, drop: true}\n"
        "  - {name: extra, trainable: ['llm.*'], lr: 1.0e-4, budget: {steps: 3}}\n"
    )
    r = load_recipe(tmp_path / "mine.yaml")
    assert [s.name for s in r.stages] == ["warmup-adaptation", "world-knowledge", "extra"]


def test_recipe_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="stages.0.lr"):
        load_recipe("tiny-sailvit", ["stages.0.lr=-1"])
    with pytest.raises(ConfigError, match="vars.nope"):
        (tmp_path / "r.yaml").write_text("base: tiny-sailvit\nname: r\nvars: {}\nmodel: {path: '${nope}'}\n")
        load_recipe(tmp_path / "r.yaml")
    with pytest.raises(ConfigError, match="shipped recipe"):
        load_recipe("no-such-recipe")
    with pytest.raises(ConfigError, match="has no stage"):
        load_recipe("tiny-sailvit").stage("nope")
    assert (RECIPES_DIR / "sailvit.yaml").is_file()


def test_schedules():
    assert lr_factor(0.0, "cosine", 0.1) == pytest.approx(1e-3)
    assert lr_factor(0.05, "cosine", 0.1) == pytest.approx(0.5)
    assert lr_factor(0.1, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(0.55, "cosine", 0.1) == pytest.approx(0.5)
    assert lr_factor(1.0, "cosine", 0.1, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(0.7, "constant", 0.1) == 1.0
    assert lr_factor(0.75, "wsd", 0.0, decay_fraction=0.2) == 1.0
    assert lr_factor(0.9, "wsd", 0.0, decay_fraction=0.2) == pytest.approx(0.5)
    assert lr_factor(1.0, "wsd", 0.0, decay_fraction=0.2) == pytest.approx(0.0)
    with pytest.raises(ConfigError):
        lr_factor(0.5, "linear", 0.0)


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.vit = nn.Linear(4, 4)
        self.proj = nn.Linear(4, 4)
        self.lm = nn.Linear(4, 4)


def _toy_alias(name):
    return (
        {"vit": "vision", "proj": "projector", "lm": "llm"}[name.split(".")[0]] + "." + name.split(".", 1)[1]
    )


def test_param_groups_skip_frozen_and_split_lr_and_decay():
    model = _Toy()
    model.lm.requires_grad_(False)
    groups = build_param_groups(model, 1e-3, 0.1, {"vision.*": 1e-5}, alias=_toy_alias)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"vision.*", "vision.*/no_decay", "default", "default/no_decay"}
    assert by_name["vision.*"]["lr"] == 1e-5 and by_name["default"]["lr"] == 1e-3
    assert by_name["default/no_decay"]["weight_decay"] == 0.0 and by_name["default"]["weight_decay"] == 0.1
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == 4  # lm frozen: no optimizer state for it
    opt = build_optimizer(groups)
    lrs = set_lr(opt, 0.5)
    assert lrs["vision.*"] == pytest.approx(5e-6)
    model.vit.weight.sum().backward()
    opt.step()
    assert all(id(p) not in {id(q) for q in model.lm.parameters()} for p in opt.state)
    model.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable"):
        build_param_groups(model, 1e-3, 0.1, alias=_toy_alias)


def test_checkpoint_listing_ignores_incomplete(tmp_path, caplog):
    def make(name, complete):
        d = tmp_path / name
        d.mkdir()
        if complete:
            (d / ".metadata").write_bytes(b"x")
            (d / "trainer_state.json").write_text("{}")

    make("step-0000005", True)
    make("step-0000010", True)
    make("step-0000015", False)
    make(".tmp-step-0000020", False)
    with caplog.at_level("WARNING"):
        found = list_checkpoints(tmp_path)
    assert [p.name for p in found] == ["step-0000005", "step-0000010"]
    assert latest_checkpoint(tmp_path).name == "step-0000010"
    assert "step-0000015" in caplog.text and ".tmp-step-0000020" in caplog.text
    assert latest_checkpoint(tmp_path / "missing") is None


def test_flops_from_config():
    from sailvl.model import get_preset_config

    cfg = get_preset_config("sailvl-2b")
    per_token = 3 * llm_linear_flops(cfg.text_config)
    # Qwen2.5-1.5B: ~1.3B non-embedding params -> ~6 * 1.3e9 FLOPs per token (LM head counted separately).
    assert 7e9 < per_token < 9e9
    assert train_step_flops(cfg, 8192, 2 * 4096**2, 10, 1000) > 8192 * per_token


def test_metrics_jsonl(tmp_path):
    logger = MetricsLogger(tmp_path, enabled=True)
    logger.log({"step": 1, "stage": "s", "loss": 2.5, "grad_norm": float("nan")})
    logger.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 1, "stage": "s", "loss": 2.5, "grad_norm": None}]
    assert any((tmp_path / "tb").iterdir())
    MetricsLogger(tmp_path / "off", enabled=False).log({"step": 1})
    assert not (tmp_path / "off").exists()


@pytest.mark.parametrize("vision", ["internvit", "aimv2"])
def test_materialize_initialises_like_the_class(vision):
    """Meta build + materialize: every tensor finite, buffers and constants as a normal build, ties restored."""
    from _model_helpers import tiny_aimv2_config, tiny_internvit_config, tiny_internvl_config

    from sailvl.model.build import build_from_config
    from sailvl.train.parallel import materialize

    vision_config = tiny_internvit_config() if vision == "internvit" else tiny_aimv2_config()
    config = tiny_internvl_config(vision_config, vocab_size=300, image_token_id=5)
    model = build_from_config(config, device="meta", seed=0)
    materialize(model, torch.device("cpu"))
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        assert tensor.device.type == "cpu" and torch.isfinite(tensor).all(), name
        assert tensor.dtype == torch.long or float(tensor.abs().max()) < 1e3, name
    reference = build_from_config(config, device="cpu", seed=0)
    for name, buffer in reference.named_buffers():  # RoPE inv_freq, AIMv2 position ids
        assert torch.equal(model.get_buffer(name), buffer), name
    for name, param in reference.named_parameters():
        mine = model.get_parameter(name)
        if float(param.std()) == 0 or param.numel() == 1:
            assert torch.equal(mine, param), name  # constants: zeros, ones, layer-scale values
        else:
            assert float(mine.std()) == pytest.approx(float(param.std()), rel=0.5), name


def test_attention_auto_resolves_per_device_and_flex_is_refused_on_cpu():
    from sailvl.errors import SailvlError
    from sailvl.model import build_model
    from sailvl.train.parallel import mask_format_for, resolve_attention, set_attention

    assert resolve_attention("auto", torch.device("cpu")) == "sdpa"
    assert resolve_attention("auto", torch.device("cuda", 0)) == "flex_attention"
    assert resolve_attention("eager", torch.device("cuda", 0)) == "eager"
    assert [mask_format_for(k) for k in ("sdpa", "eager", "flex_attention", "flash_attention_2")] == [
        "bool", "bool", "flex", "none"
    ]  # fmt: skip
    model = build_model("tiny")
    with pytest.raises(SailvlError, match="flex_attention cannot train on CPU"):
        set_attention(model, "flex_attention", torch.device("cpu"))
    set_attention(model, "flex_attention")  # forward-only use (and GPU training) is allowed
    assert model.config.text_config._attn_implementation == "flex_attention"
    assert model.config.vision_config._attn_implementation == "sdpa"
