"""The GRPO stage: RL prompts from SFT records, the resumable prompt sampler, seeded rollouts, exact resume,
dynamic sampling, micro-batch invariance and the KL reference, on a tiny model and world."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from sailvl.data.bad_records import EMPTY_ANSWER, BadRecordCounter
from sailvl.data.config import DataConfig
from sailvl.data.sample import Sample
from sailvl.train import load_recipe
from sailvl.train import rewards as rewards_module
from sailvl.train.grpo import group_advantages
from sailvl.train.rollout import NO_PROMPT, PromptSampler, read_prompts, rl_prompt
from sailvl.train.trainer import train_recipe


def _sample(conversation, metadata=None) -> Sample:
    return Sample("s", "src", [], conversation, metadata or {})


def test_rl_prompt_is_the_conversation_before_the_last_answer():
    turns = [
        {"role": "user", "content": "<image>\nq1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": " red "},
    ]
    prompt = rl_prompt(_sample(turns))
    assert prompt.conversation == turns[:3] and prompt.gold == " red "
    assert rl_prompt(_sample(turns, {"answer": "blue"})).gold == "blue"  # metadata wins
    assert rl_prompt(_sample(turns[:1], {"answer": "blue"})).conversation == turns[:1]
    assert rl_prompt(_sample(turns[:1])) == EMPTY_ANSWER  # nothing to check an answer against
    assert rl_prompt(_sample([{"role": "assistant", "content": "a"}])) == NO_PROMPT
    assert rl_prompt(_sample([*turns[:3], {"role": "assistant", "content": "  "}])) == EMPTY_ANSWER


def test_read_prompts_counts_records_without_gold(tmp_path):
    lines = [
        {"id": "ok", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"id": "empty", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]},
        {"id": "broken"},
    ]
    path = tmp_path / "rl.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    bad = BadRecordCounter(log=False)
    prompts = read_prompts(DataConfig(sources=[{"path": str(path)}]), bad)
    assert [p.id for p in prompts] == ["ok"]
    assert bad.seen == 3 and bad.counts[EMPTY_ANSWER] == 1 and bad.num_bad == 2


def test_prompt_sampler_shards_epochs_and_resumes():
    prompts = [
        rl_prompt(_sample([{"role": "user", "content": f"q{i}"}], {"answer": str(i)})) for i in range(5)
    ]
    ranks = [PromptSampler(prompts, seed=3, rank=r, world_size=2) for r in range(2)]
    drawn = [[p.gold for p in s.next_prompts(5)] for s in ranks]
    # Two epochs of 5 prompts over 2 ranks: every prompt twice in all, no prompt twice within an epoch.
    assert sorted(drawn[0] + drawn[1]) == sorted([str(i) for i in range(5)] * 2)
    first_epoch = [drawn[i % 2][i // 2] for i in range(5)]
    assert sorted(first_epoch) == [str(i) for i in range(5)]
    resumed = PromptSampler(prompts, seed=3, rank=0, world_size=2)
    resumed.load_state_dict(json.loads(json.dumps(ranks[0].state_dict())))
    assert [p.gold for p in resumed.next_prompts(3)] == [p.gold for p in ranks[0].next_prompts(3)]


def test_group_advantages_flag_equal_groups():
    advantages, flat = group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2, scale=True)
    assert flat.tolist() == [False, True]
    assert advantages[2:].tolist() == [0.0, 0.0]
    assert advantages[0] > 0.7 > 0 > -0.7 > advantages[1]  # +-0.5 / (std 0.707 + 1e-4)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("grpo_world")
    generate_world(root / "world", 12, 0, tasks="colour", max_objects=1, object_scale=2.0, yesno_prob=0.0)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    return root


@pytest.fixture
def odd_length_reward(monkeypatch):
    """A reward a random-init model scores differently within a group (exact match is 0 for all its answers),
    so the steps update the policy."""
    monkeypatch.setitem(rewards_module.REWARDS, "odd_length", lambda text, gold, sample: float(len(text) % 2))


def _run(world, out, *extra, steps=2, resume=None):
    overrides = [
        f"vars.world={world / 'world'}", f"vars.model_dir={world / 'model'}", f"stages.0.budget.steps={steps}",
        "stages.0.grpo.group_size=4", "stages.0.grpo.prompts_per_step=2", "stages.0.grpo.max_new_tokens=4",
        "stages.0.grpo.rewards={odd_length: 1.0}", "stages.0.lr=1.0e-2", *extra,
    ]  # fmt: skip
    train_recipe(load_recipe("tiny-rlvr", overrides), out, stage="rlvr" if resume else None, resume=resume)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("step_seconds")
    return rows, load_file(str(out / "rlvr" / "export" / "model.safetensors"))


def _same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_gives_identical_runs(world, tmp_path, odd_length_reward):
    rows_a, weights_a = _run(world, tmp_path / "a")
    rows_b, weights_b = _run(world, tmp_path / "b")
    rows_c, weights_c = _run(world, tmp_path / "c", "seed=1")
    assert rows_a == rows_b and _same_weights(weights_a, weights_b)
    assert rows_a[0]["updates"] == 1 and rows_a[0]["grad_norm"] > 0  # the steps did learn something
    assert 0 < rows_a[0]["reward"] < 1 and rows_a[0]["entropy"] > 0 and rows_a[0]["answer_tokens"] > 0
    assert rows_a != rows_c and not _same_weights(weights_a, weights_c)


def test_resume_continues_exactly(world, tmp_path, odd_length_reward):
    straight, weights = _run(
        world, tmp_path / "straight", "stages.0.save_every=1", "stages.0.keep_last=3", steps=3
    )
    resumed_dir = tmp_path / "resumed"
    checkpoint = resumed_dir / "rlvr" / "checkpoints" / "step-0000002"
    shutil.copytree(tmp_path / "straight" / "rlvr" / "checkpoints" / "step-0000002", checkpoint)
    resumed, resumed_weights = _run(
        world, resumed_dir, "stages.0.save_every=1", "stages.0.keep_last=3", steps=3, resume=str(checkpoint)
    )
    assert resumed == straight[2:] and _same_weights(weights, resumed_weights)


def test_micro_batches_give_the_same_update(world, tmp_path, odd_length_reward):
    rows_1, _ = _run(world, tmp_path / "one", steps=1)
    rows_2, _ = _run(world, tmp_path / "two", "stages.0.grad_accum=3", steps=1)
    # The loss and the pre-clip gradient norm see any change of normalisation. The weights are not compared:
    # Adam's first step is about lr * sign(g), so float rounding in a near-zero g moves single elements.
    assert rows_1[0]["loss"] == pytest.approx(rows_2[0]["loss"], abs=1e-6)
    assert rows_1[0]["grad_norm"] == pytest.approx(rows_2[0]["grad_norm"], rel=1e-5)


def test_dynamic_sampling_drops_flat_groups(world, tmp_path):
    # A random-init model never answers a colour right: every group's rewards are all 0.
    rows, weights = _run(
        world, tmp_path / "dyn", "stages.0.grpo.rewards={exact_match: 1.0}", "stages.0.grpo.dynamic_sampling=true",
        steps=1,
    )  # fmt: skip
    assert rows[0]["groups_dropped"] == 2 and rows[0]["updates"] == 0 and rows[0]["reward"] == 0.0
    start = load_file(str(world / "model" / "model.safetensors"))
    assert _same_weights({k: weights[k] for k in start}, start)


@pytest.mark.parametrize("lora", [False, True])
def test_kl_to_the_reference_starts_at_zero_then_grows(world, tmp_path, odd_length_reward, lora):
    extra = ["stages.0.grpo.kl_beta=0.1"]
    if lora:
        extra += ["stages.0.trainable=[]", "stages.0.lora={r: 4, alpha: 8, targets: [llm.*.mlp.*_proj]}"]
    rows, _ = _run(world, tmp_path / "kl", *extra)
    assert rows[0]["kl"] == pytest.approx(
        0.0, abs=1e-6
    )  # the policy is the reference before its first update
    assert rows[1]["kl"] > 1e-6


def test_rollouts_never_emit_image_tokens(world):
    # An answer with an <IMG_CONTEXT> token would not match the images in the loss's forward (transformers
    # raises "Image features and image tokens do not match"): the rollouts suppress the image markers.
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model
    from sailvl.train.recipe import GrpoSpec
    from sailvl.train.rollout import Rollouts, completion_logps, image_token_ids, sample_rollouts

    model, processor = load_model(world / "model"), SailVLProcessor.from_pretrained(world / "model")
    banned = image_token_ids(processor.tokenizer)
    assert processor.image_token_id in banned and len(banned) == 3
    with torch.no_grad():  # the untrained model would otherwise pick an image marker most of the time
        model.get_output_embeddings().weight[banned] *= 0
        model.get_output_embeddings().weight[banned] += model.get_output_embeddings().weight.abs().max() * 5
    prompts = read_prompts(
        DataConfig(
            sources=[{"path": str(world / "world" / "sft.jsonl"), "image_root": str(world / "world")}]
        ),
        BadRecordCounter(),
    )[:2]
    spec = GrpoSpec(group_size=3, max_new_tokens=4)
    rollouts: Rollouts = sample_rollouts(model, processor, prompts, spec, 1, seed=0, synced=False)
    assert not torch.isin(rollouts.completion_ids, torch.tensor(banned)).any()
    logps, entropy = completion_logps(model, rollouts, slice(0, 6), 1.0, with_entropy=True)
    assert (
        logps.shape == rollouts.completion_ids.shape
        and torch.isfinite(logps).all()
        and torch.isfinite(entropy).all()
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stages.0.grpo.rewards={judge: 1.0}", r"stages\.0\.grpo\.rewards: unknown reward 'judge'"),
        ("stages.0.grpo.backend=vllm", r"stages\.0\.grpo\.backend: vllm rollouts are not implemented"),
    ],
)
def test_check_refuses_bad_grpo_settings_at_the_door(world, tmp_path, override, message):
    from sailvl.errors import ConfigError
    from sailvl.train.check import check_recipe

    overrides = [f"vars.world={world / 'world'}", f"vars.model_dir={world / 'model'}"]
    assert "rlvr: OK" in check_recipe(load_recipe("tiny-rlvr", overrides), tmp_path)[0]
    with pytest.raises(ConfigError, match=message):
        check_recipe(load_recipe("tiny-rlvr", [*overrides, override]), tmp_path)


def test_full_size_recipe_carries_dapo_settings():
    spec = load_recipe("finetune-rlvr").stages[0].grpo
    assert (spec.epsilon_low, spec.epsilon_high) == (0.2, 0.28)  # clip-higher
    assert spec.loss_aggregation == "token" and spec.dynamic_sampling and spec.kl_beta == 0.0
