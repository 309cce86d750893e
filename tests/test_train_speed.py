"""Speed switches of the training step give the same loss curve as the default path on the tiny model (CPU)."""

import pytest
import torch
from _train_helpers import make_batch

from sailvl.train.parallel import DistInfo
from sailvl.train.step import train_step


def _curve(steps=4, foreach_clip=False, sync=True, fused=False, grad_clip=0.05):
    """Losses and grad norms of `steps` steps from the same init on the same batches (2 micro-batches each)."""
    from sailvl.model import build_model

    torch.manual_seed(0)
    model = build_model("tiny", seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False, fused=fused or None)
    results = [
        train_step(
            model, optimizer, [make_batch(2 * s), make_batch(2 * s + 1)], DistInfo(), torch.float32, grad_clip,
            foreach_clip=foreach_clip, sync=sync,
        )
        for s in range(steps)
    ]  # fmt: skip
    return [r.loss for r in results], [r.grad_norm for r in results], model


@pytest.fixture(scope="module")
def reference():
    return _curve()


def test_foreach_grad_clip_gives_the_same_curve(reference):
    losses, norms, _ = _curve(foreach_clip=True)
    assert norms[0] > 0.05  # the clip is active, so the clipped update is what is compared
    torch.testing.assert_close(losses, reference[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norms, reference[1], rtol=1e-5, atol=1e-6)


def test_no_host_sync_step_gives_the_same_curve_as_the_synced_fused_step():
    synced = _curve(fused=True)
    deferred = _curve(fused=True, sync=False, foreach_clip=True)
    torch.testing.assert_close(deferred[0], synced[0], rtol=1e-5, atol=1e-6)
    # The fused optimizer itself matches the default one within fp rounding.
    torch.testing.assert_close(synced[0], _curve()[0], rtol=1e-4, atol=1e-5)


def test_no_host_sync_step_skips_a_non_finite_update_on_the_device():
    from sailvl.errors import SailvlError
    from sailvl.model import build_model

    model = build_model("tiny", seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    batch = make_batch(0)
    batch["pixel_values"] = batch["pixel_values"] * float("nan")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_step(model, optimizer, [batch], DistInfo(), torch.float32, 1.0, sync=False)
    assert isinstance(result.skipped_t, torch.Tensor) and result.skipped
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name
    assert all(float(s["step"]) == 0 for s in optimizer.state.values())
    plain = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises(SailvlError, match="fused optimizer"):
        train_step(model, plain, [make_batch(1)], DistInfo(), torch.float32, 1.0, sync=False)


def test_trainer_with_every_step_switch_on_follows_the_checked_in_curve(tmp_path):
    """tiny-sailvit stage I with foreach clipping, fused AdamW and no per-step host sync (logging every 5 steps)
    against the default path's checked-in loss curve."""
    import json
    from pathlib import Path

    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir
    from sailvl.train import load_recipe
    from sailvl.train.trainer import train_recipe

    generate_world(tmp_path / "world", 120, 0)
    make_tiny_model_dir(tmp_path / "world", tmp_path / "model", seed=0)
    recipe = load_recipe(
        "tiny-sailvit",
        [
            f"vars.world={tmp_path / 'world'}", f"vars.model_dir={tmp_path / 'model'}", "stages.0.budget.steps=20",
            "stages.0.log_every=5", "parallel.foreach_grad_clip=true", "parallel.fused_optimizer=true",
            "parallel.host_sync_every_step=false",
        ],
    )  # fmt: skip
    train_recipe(recipe, tmp_path / "run", stage="warmup-adaptation")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    expected = json.loads((Path(__file__).parent / "assets" / "tiny_sailvit_loss.json").read_text())["loss"]
    got = [r["loss"] for r in rows]
    # The checked-in curve's own tolerance (test_train_loop); the switches moved it by at most 4.8e-7 here.
    assert got == pytest.approx([expected[s - 1] for s in (5, 10, 15, 20)], rel=2e-4, abs=2e-4)
    assert all(r["skipped"] is False and r["step_seconds"] > 0 for r in rows)


def test_step_switches_resolve_per_device_and_refuse_a_contradiction():
    from sailvl.errors import SailvlError
    from sailvl.train.parallel import step_switches
    from sailvl.train.recipe import ParallelConfig

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    on_cpu = step_switches(ParallelConfig(), cpu)
    assert (on_cpu.foreach_clip, on_cpu.fused_optimizer, on_cpu.sync) == (False, False, True)
    gpu = step_switches(ParallelConfig(), cuda)
    assert (gpu.foreach_clip, gpu.fused_optimizer, gpu.sync) == (True, True, False)
    with pytest.raises(SailvlError, match="fused_optimizer"):
        step_switches(ParallelConfig(host_sync_every_step=False, fused_optimizer=False), cuda)


def test_liger_switch_without_liger_is_one_clear_error():
    """liger-kernel (Triton, GPU) is not installed on the CPU box: switching it on names the key and the package."""
    import importlib.util

    from sailvl.errors import SailvlError
    from sailvl.model import build_model
    from sailvl.train.parallel import apply_liger_kernels

    if importlib.util.find_spec("liger_kernel") is not None:
        pytest.skip("liger-kernel is installed here; its kernels are exercised on GPU")
    with pytest.raises(SailvlError, match=r"parallel.liger_kernels: true needs the liger-kernel package"):
        apply_liger_kernels(build_model("tiny", seed=0))


@pytest.mark.parametrize("preset", ["tiny", "sailvl2-2b"])
def test_compiled_blocks_and_block_mask_have_no_graph_breaks(preset):
    """`bench train --explain`: a change that puts a graph break into a block (or the BlockMask) fails here.
    sailvl2-2b's blocks are AIMv2 (SwiGLU, RMSNorm) and Qwen3 (qk-norm), at their real widths."""
    from sailvl.bench.graph_breaks import explain_graph_breaks

    report = explain_graph_breaks(preset)
    expected = {
        "tiny": ("InternVLVisionLayer", "Qwen2DecoderLayer"),
        "sailvl2-2b": ("Aimv2EncoderLayer", "Qwen3DecoderLayer"),
    }
    assert (report["vision"], report["decoder"]) == expected[preset]
    for case in ("decoder_block_sdpa", "decoder_block_flex", "vit_block", "block_mask"):
        assert (report[case]["graphs"], report[case]["graph_breaks"]) == (1, 0), (case, report[case])


def test_compiled_block_mask_equals_the_eager_one():
    """parallel.compile_block_mask: the same BlockMask (so the same flex attention) for packs of new shapes too."""
    from sailvl.train.step import to_device

    cpu = torch.device("cpu")
    for row in ([0] * 100 + [1] * 156, [0] * 60 + [1] * 140 + [-1] * 56):  # the second pack ends in padding
        segments = torch.tensor([row])
        batch = {"input_ids": torch.zeros(1, 256, dtype=torch.long), "segment_ids": segments}
        eager = to_device(batch, cpu, torch.float32)["attention_mask"]
        compiled = to_device(batch, cpu, torch.float32, compiled_mask=True)["attention_mask"]
        assert torch.equal(compiled.to_dense(), eager.to_dense())


def test_one_block_config_keeps_the_block_shapes():
    """`--explain` on a 2B preset builds one block per tower at the preset's real widths, not 2B weights."""
    from sailvl.bench.graph_breaks import one_block_config
    from sailvl.model import get_preset_config

    full, small = get_preset_config("sailvl2-2b"), one_block_config("sailvl2-2b")
    for part in ("vision_config", "text_config"):
        a, b = getattr(full, part), getattr(small, part)
        assert b.num_hidden_layers == 1 < a.num_hidden_layers
        for key in ("hidden_size", "intermediate_size", "num_attention_heads"):
            assert getattr(b, key) == getattr(a, key), (part, key)
    assert small.text_config.num_key_value_heads == full.text_config.num_key_value_heads
    assert small.text_config.vocab_size < full.text_config.vocab_size


def test_metrics_report_how_long_each_step_waited_for_the_loader(tmp_path, monkeypatch):
    """A loader that takes >= 50 ms per batch shows in data_wait_s (per step, over the log window) and in
    data_wait_fraction (its share of the window's wall time), in both the synced and the unsynced step."""
    import json
    import time

    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir
    from sailvl.train import load_recipe, trainer

    generate_world(tmp_path / "world", 60, 0)
    make_tiny_model_dir(tmp_path / "world", tmp_path / "model", seed=0)
    next_batch = trainer._next_batch

    def slow_next_batch(batches):
        time.sleep(0.05)
        return next_batch(batches)

    monkeypatch.setattr(trainer, "_next_batch", slow_next_batch)
    for sync in ("true", "false"):
        recipe = load_recipe(
            "tiny-sailvit",
            [
                f"vars.world={tmp_path / 'world'}", f"vars.model_dir={tmp_path / 'model'}", "stages.0.budget.steps=6",
                "stages.0.log_every=3", "stages.0.grad_accum=2", f"parallel.host_sync_every_step={sync}",
                "parallel.fused_optimizer=true",
            ],
        )  # fmt: skip
        run = tmp_path / f"run-{sync}"
        trainer.train_recipe(recipe, run, stage="warmup-adaptation")
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [3, 6]
        for r in rows:
            assert r["data_wait_s"] >= 2 * 0.05, (sync, r)  # two micro-batches per step, each slept 50 ms
            assert 0 < r["data_wait_fraction"] <= 1, (sync, r)
            if sync == "false":  # step_seconds is then the window's wall time per step, waits included
                assert r["data_wait_fraction"] == pytest.approx(r["data_wait_s"] / r["step_seconds"])


@pytest.mark.parametrize(
    ("switch", "message"),
    [
        ("foreach_grad_clip=true", "--explain takes only --switch liger_kernels"),
        ("liger_kernels=maybe", "liger_kernels"),
    ],
)
def test_explain_takes_only_the_liger_switch(switch, message, capsys):
    """`bench train --explain --switch liger_kernels=true` is the GPU plan's Liger graph-break check; any other
    switch, or a value that is not a bool, is one error line naming it (exit 2), before anything is built."""
    from sailvl.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "train", "--preset", "tiny", "--explain", "--switch", switch])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and message in err, err
