"""Whole-recipe checks before training: data blocks at load, files, model paths, globs, budget units, drop-path."""

import shutil

import pytest
import torch

from sailvl.errors import ConfigError


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("check_world")
    generate_world(root / "world", 20, 0)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    return root


def _vars(world):
    return [f"vars.world={world / 'world'}", f"vars.model_dir={world / 'model'}"]


def _check(capsys, world, *overrides):
    """`sailvl train tiny-sailvit ... --check` in-process; returns (exit code, stdout + stderr)."""
    from sailvl.cli import main

    code = 0
    try:
        main(["train", "tiny-sailvit", *_vars(world), *overrides, "--check", "--out", str(world / "run")])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out + err


def test_check_prints_one_ok_line_per_stage_without_reading_weights(world, tmp_path, capsys):
    # A model directory without its weights: --check reads configs and the processor only.
    model = tmp_path / "model"
    shutil.copytree(world / "model", model, ignore=shutil.ignore_patterns("*.safetensors"))
    code, output = _check(capsys, world, f"vars.model_dir={model}")
    assert code == 0, output
    lines = output.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "stage 0 warmup-adaptation", "stage 1 fine-grained-alignment", "stage 2 world-knowledge",
    ]  # fmt: skip
    assert all(": OK (" in line for line in lines)
    assert "trainable 49,920 of" in lines[0]  # the projector of the tiny model
    assert not (world / "run").exists()  # nothing written


def test_typo_in_the_last_stage_data_block_fails_at_load(world):
    from sailvl.train import load_recipe

    with pytest.raises(ConfigError, match=r"stages\.2\.data\.packs_per_bach: unknown key"):
        load_recipe("tiny-sailvit", [*_vars(world), "stages.2.data.packs_per_bach=2"])
    with pytest.raises(ConfigError, match=r"stages\.2\.data\.sources\.1\.weight"):
        load_recipe("tiny-sailvit", [*_vars(world), "stages.2.data.sources.1.weight=-1"])
    with pytest.raises(ConfigError, match=r"data\.max_tiles_per_pack"):  # the recipe-level block
        load_recipe("tiny-sailvit", [*_vars(world), "data.max_tiles_per_pack=zero"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("stages.2.data.sources.1.path=/no/such.jsonl", "stages.2.data.sources.1.path"),
        ("stages.2.data.sources.0.image_root=/no/such/dir", "stages.2.data.sources.0.image_root"),
        ("stages.1.trainable=[vison.*]", "stages.1.trainable"),
        ("stages.2.lr_groups={llm.layer.*: 1.0e-4}", "stages.2.lr_groups"),
        ("stages.2.reinit=[projecter]", "stages.2.reinit"),
        ("stages.2.init_from=/no/such/model", "stages.2.init_from"),
        ("stages.2.budget={tokens: 131}", "stages.2.budget.tokens"),
        ("vars.model_dir=/no/such/model", "model.path"),
    ],
)
def test_check_names_the_dotted_key(world, override, key, capsys):
    code, output = _check(capsys, world, override)
    assert code == 2 and output.startswith("error: ") and key in output, output


def test_budget_units(world):
    from sailvl.train import load_recipe
    from sailvl.train.recipe import Budget, parse_count

    assert parse_count("131B") == 131_000_000_000
    assert parse_count("3.5M") == 3_500_000
    assert parse_count("8k") == 8000
    assert parse_count("1.31e11") == 131_000_000_000
    assert parse_count(7) == 7
    assert Budget(tokens="20K").tokens == 20_000
    with pytest.raises(ConfigError, match=r"stages\.0\.budget\.tokens"):
        load_recipe("tiny-sailvit", [*_vars(world), "stages.0.budget.tokens=12X"])
    with pytest.raises(ConfigError, match=r"stages\.0\.budget\.samples"):
        load_recipe("tiny-sailvit", [*_vars(world), "stages.0.budget.samples=1.5"])
    recipe = load_recipe("sailvl-2b", ["stages.0.budget.tokens=131B"])
    assert recipe.stages[0].budget.tokens == 131 * 10**9


def test_vision_drop_path_rises_with_depth_and_is_off_in_eval():
    from sailvl.model import build_model
    from sailvl.model.build import set_vision_drop_path

    model = build_model("tiny", seed=0)
    layers = model.model.vision_tower.encoder.layer
    set_vision_drop_path(model, 0.5)
    rates = [layer.attention._sailvl_drop_path_rate for layer in layers]
    assert rates == [0.0, 0.5] and layers[-1].mlp._sailvl_drop_path_rate == 0.5
    pixels = torch.randn(16, 3, 112, 112)
    tower = model.model.vision_tower
    tower.eval()
    with torch.no_grad():
        ref = tower(pixel_values=pixels).last_hidden_state
        tower.train()
        torch.manual_seed(0)
        dropped = tower(pixel_values=pixels).last_hidden_state
        set_vision_drop_path(model, 0.0)
        kept = tower(pixel_values=pixels).last_hidden_state
    assert torch.allclose(kept, ref, atol=1e-5)  # rate 0 in training mode: unchanged
    per_tile = (dropped - ref).abs().flatten(1).amax(1)
    assert (per_tile > 1e-4).any()  # some tiles lost (or had rescaled) their last block's branches
    tower.eval()
    with torch.no_grad():
        set_vision_drop_path(model, 0.5)
        assert torch.allclose(tower(pixel_values=pixels).last_hidden_state, ref, atol=1e-6)


def test_vision_drop_path_fits_aimv2_blocks_on_meta():
    from sailvl.model import build_model
    from sailvl.model.build import set_vision_drop_path

    model = build_model("sailvl2-2b", device="meta")
    set_vision_drop_path(model, 0.1)
    block = model.model.vision_tower.encoder.layers[-1]
    assert block.attention._sailvl_drop_path_rate == pytest.approx(0.1)
    assert block.ffn._sailvl_drop_path_rate == pytest.approx(0.1)
