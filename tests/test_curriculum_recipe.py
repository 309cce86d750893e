"""Curriculum as stages: a recipe's `sft_curriculum` turns a curation split into ordered SFT stages or one mixed stage."""

import pytest

from sailvl.errors import ConfigError
from sailvl.train.recipe_files import load_recipe

TINY = ["vars.world=/w", "vars.model_dir=/m", "vars.curriculum=/c"]


def test_sailvl_2b_sft_stages_read_the_curriculum_in_order():
    recipe = load_recipe("sailvl-2b", ["vars.curriculum=/data/cur"])
    sft = recipe.stages[2:]
    assert [s.name for s in sft] == ["sft-knowledge", "sft-instruction", "sft-preference"]
    assert [recipe.stage_data(s)["sources"][0]["path"] for s in sft] == [
        f"/data/cur/stage-{k}.jsonl" for k in (1, 2, 3)
    ]
    assert [len(recipe.stage_data(s)["sources"]) for s in sft] == [1, 1, 1]
    assert [s.budget.samples for s in sft] == [21_000_000, 12_000_000, 3_500_000]  # budgets stay the stages'
    assert recipe.stage_data(recipe.stages[0])["sources"][0]["path"].endswith("sail_caption.jsonl")


def test_mixed_baseline_is_one_stage_with_the_same_data_and_total_budget():
    curriculum = load_recipe("tiny-sailvl-curriculum", TINY)
    mixed = load_recipe("tiny-sailvl-curriculum", [*TINY, "sft_curriculum.mode=mixed"])
    assert [s.name for s in mixed.stages] == ["pretrain-alignment", "pretrain-advance", "sft-mixed"]
    stage = mixed.stages[2]
    assert stage.budget.samples == sum(s.budget.samples for s in curriculum.stages[2:]) == 1200
    sources = mixed.stage_data(stage)["sources"]
    assert [s["path"] for s in sources] == [f"/c/stage-{k}.jsonl" for k in (1, 2, 3)]
    assert all(s["repeat"] == 1.0 for s in sources)  # every record equally likely: a shuffled union
    assert stage.lr == curriculum.stages[2].lr and stage.trainable == curriculum.stages[2].trainable
    assert [s.name for s in curriculum.stages[2:]] == ["sft-knowledge", "sft-instruction", "sft-preference"]


def test_tiny_sailvl_keeps_its_own_sft_sources():
    recipe = load_recipe("tiny-sailvl", ["vars.world=/w", "vars.model_dir=/m"])
    assert recipe.sft_curriculum is None
    assert recipe.stage_data(recipe.stages[2])["sources"][0]["path"] == "/w/sft.jsonl"


def test_curriculum_errors_name_the_key():
    with pytest.raises(ConfigError, match="sft_curriculum.stages"):
        load_recipe("tiny-sailvl-curriculum", [*TINY, "sft_curriculum.stages=[sft-knowledge,nope]"])
    with pytest.raises(ConfigError, match="consecutive"):
        load_recipe("tiny-sailvl-curriculum", [*TINY, "sft_curriculum.stages=[sft-preference,sft-knowledge]"])
    with pytest.raises(ConfigError, match="same single unit"):
        load_recipe(
            "tiny-sailvl-curriculum",
            [*TINY, "sft_curriculum.mode=mixed", "stages.3.budget.samples=null", "stages.3.budget.steps=5"],
        )
    with pytest.raises(ConfigError, match="mode"):
        load_recipe("tiny-sailvl-curriculum", [*TINY, "sft_curriculum.mode=shuffled"])
