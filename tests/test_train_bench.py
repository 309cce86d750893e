"""`sailvl bench train` reports consistent fields; the target-only logits path equals the full-logits path."""

import pytest
import torch


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    """A small synthetic world and tiny model dir, reused by the bench (it skips generation when present)."""
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("bench_train")
    generate_world(root / "world", 60, 0)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    return root


def _packed_batch(bench_dir, max_tokens=256, packs_per_batch=2):
    from sailvl.config import parse_config
    from sailvl.data.config import DataConfig
    from sailvl.data.loader import build_loader
    from sailvl.data.processor import SailVLProcessor

    processor = SailVLProcessor.from_pretrained(bench_dir / "model")
    sources = [
        {"path": str(bench_dir / "world" / n), "image_root": str(bench_dir / "world"), "max_tiles": 1}
        for n in ("sft.jsonl", "pretrain.jsonl")
    ]
    config = parse_config(
        DataConfig,
        {
            "sources": sources,
            "num_workers": 0,
            "packing": True,
            "max_tokens": max_tokens,
            "packs_per_batch": packs_per_batch,
        },
    )
    return next(iter(build_loader(config, processor)))


def _loss_and_grads(bench_dir, batch, target_logits_only):
    from sailvl.model import load_model
    from sailvl.train.parallel import DistInfo
    from sailvl.train.step import to_device, token_loss_sum

    model = load_model(bench_dir / "model", dtype=torch.float32).train()
    loss = token_loss_sum(model, to_device(batch, DistInfo().device, torch.float32), target_logits_only)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_target_only_logits_match_full_logits(bench_dir):
    batch = _packed_batch(bench_dir)
    assert batch["input_ids"].shape[0] == 2 and batch["num_target_tokens"] > 0
    fast_loss, fast_grads = _loss_and_grads(bench_dir, batch, True)
    full_loss, full_grads = _loss_and_grads(bench_dir, batch, False)
    # Per-token mean within 1e-6 (the sum runs over hundreds of target tokens).
    assert abs(float(fast_loss - full_loss)) / batch["num_target_tokens"] < 1e-6
    assert fast_grads.keys() == full_grads.keys() and len(fast_grads) > 0
    for name, grad in full_grads.items():
        # fp32 rounding of sums over hundreds of tokens: absolute error relative to the tensor's largest entry
        # (the tied embedding's gradient reaches ~60; its largest difference was 1.5e-5 under transformers 5.24).
        scale = max(float(grad.abs().max()), 1.0)
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-6 * scale, msg=name)


def test_target_only_logits_equal_hf_loss(bench_dir):
    """Sum-CE / target count equals transformers' own mean loss on the same batch (a second, independent path)."""
    from sailvl.model import load_model
    from sailvl.train.parallel import DistInfo
    from sailvl.train.step import to_device, token_loss_sum

    batch = _packed_batch(bench_dir, packs_per_batch=1)
    model = load_model(bench_dir / "model", dtype=torch.float32).eval()
    inputs = to_device(batch, DistInfo().device, torch.float32)
    with torch.no_grad():
        ours = float(token_loss_sum(model, inputs)) / batch["num_target_tokens"]
        hf = float(model(**inputs, use_cache=False).loss)
    assert ours == pytest.approx(hf, rel=1e-6, abs=1e-6)


def test_bench_train_reports_consistent_fields(bench_dir):
    from sailvl.bench.train import bench_train

    result = bench_train(
        "tiny", steps=3, work_dir=bench_dir, pack_tokens=256, packs_per_batch=2, batch_size=4, repeats=1
    )
    assert result["sailvl_steps"] == 3 and result["hf_padded_steps"] >= 1
    # The baseline keeps pace in samples: within half a baseline batch of sailvl's count.
    assert abs(result["hf_padded_samples"] - result["sailvl_samples"]) <= 2
    for loop in ("sailvl", "hf_padded"):
        tokens, seconds = result[f"{loop}_tokens"], result[f"{loop}_seconds"]
        assert tokens > 0 and seconds > 0 and 0 <= result[f"{loop}_load_s"] <= seconds
        assert result[f"{loop}_tokens_per_s"] == pytest.approx(tokens / seconds, rel=1e-3, abs=0.1)
        assert 0.0 <= result[f"{loop}_padding_fraction"] < 1.0
        assert 0 < result[f"{loop}_target_tokens"] < tokens
    # Packing pads less than pad-to-longest batches of the same stream.
    assert result["sailvl_padding_fraction"] < result["hf_padded_padding_fraction"]
    expected = result["sailvl_tokens_per_s"] / result["hf_padded_tokens_per_s"]
    assert result["ratio"] == pytest.approx(expected, rel=1e-2)
    assert (result["pack_tokens"], result["packs_per_batch"], result["batch_size"]) == (256, 2, 4)
    assert "256-token" in result["notes"]


def test_bench_train_repeats_report_the_spread_and_profile(bench_dir, tmp_path):
    import json

    from sailvl.bench.train import bench_train

    result = bench_train(
        "tiny", steps=1, work_dir=bench_dir, pack_tokens=256, repeats=2, profile=tmp_path / "prof"
    )
    assert len(result["ratio_runs"]) == 2 and result["ratio"] in result["ratio_runs"]
    assert result["ratio_spread"] == pytest.approx(
        max(result["ratio_runs"]) - min(result["ratio_runs"]), abs=1e-3
    )
    trace = json.loads((tmp_path / "prof" / "trace.json").read_text())
    assert trace["traceEvents"]
    top = result["profile"]["top"]
    assert top and all(row["self_ms"] >= 0 and row["calls"] > 0 for row in top)
    assert any("aten::" in row["name"] for row in top)
    assert "Self CPU" in (tmp_path / "prof" / "top_kernels.txt").read_text()


def test_bench_train_rejects_bad_arguments(bench_dir):
    from sailvl.bench.train import bench_train
    from sailvl.errors import SailvlError

    with pytest.raises(SailvlError, match="unknown bench preset"):
        bench_train("huge", work_dir=bench_dir)
    with pytest.raises(SailvlError, match="pack-tokens"):
        bench_train("tiny", work_dir=bench_dir, pack_tokens=0)
    with pytest.raises(SailvlError, match="repeats"):
        bench_train("tiny", work_dir=bench_dir, repeats=0)
    with pytest.raises(SailvlError, match="unknown bench switch 'fsdp'"):
        bench_train("tiny", work_dir=bench_dir, switches={"fsdp": True})
    with pytest.raises(SailvlError, match="foreach_grad_clip"):  # a config error names the key
        bench_train("tiny", work_dir=bench_dir, switches={"foreach_grad_clip": "maybe"})
    with pytest.raises(SailvlError, match="shared-model preset"):
        bench_train("tiny", work_dir=bench_dir, ab=["foreach_grad_clip"])
    with pytest.raises(SailvlError, match="shared-model preset"):
        bench_train("tiny", work_dir=bench_dir, switches={"fsdp_one_device": True})


def test_ab_flips_one_step_switch_and_keeps_the_step_valid():
    from sailvl.bench.switches import flip_switch
    from sailvl.errors import SailvlError
    from sailvl.train.parallel import StepSwitches

    cuda = StepSwitches(foreach_clip=True, fused_optimizer=True, sync=False, compile_block_mask=True)
    flipped, also = flip_switch(cuda, "foreach_grad_clip")
    assert flipped == StepSwitches(False, True, False, True) and also == {}
    # Turning fusion off turns the host sync back on (no host sync needs the fused optimizer's found_inf).
    flipped, also = flip_switch(cuda, "fused_optimizer")
    assert flipped == StepSwitches(True, False, True, True) and also == {"host_sync_every_step": True}
    cpu = StepSwitches(foreach_clip=False, fused_optimizer=False, sync=True)
    with pytest.raises(SailvlError, match="fused optimizer"):
        flip_switch(cpu, "host_sync_every_step")
    with pytest.raises(SailvlError, match="change the model"):
        flip_switch(cpu, "fsdp_one_device")


def test_bench_shared_model_path_runs_kernels_and_baseline_on_one_model(bench_dir):
    """The GPU preset's code path (meta build, materialise, every kernel, baseline, FLOPs) on the tiny model, CPU."""
    from sailvl.bench.shared_model import bench_shared_model
    from sailvl.bench.train import PRESETS

    cfg = dict(PRESETS["sailvl-2b"])
    cfg.update(
        model="tiny", image_size=112, steps=2, warmup_steps=1, pack_tokens=384, batch_size=4, num_workers=0,
        attn=["sdpa", "eager", "no_such_kernel"], grad_accum=1,
    )  # fmt: skip
    (result,) = bench_shared_model(bench_dir, cfg, torch.device("cpu"))
    for loop in ("sailvl_sdpa", "sailvl_eager", "hf_padded"):
        assert result[f"{loop}_tokens"] > 0 and result[f"{loop}_tiles"] > 0, loop
        assert result[f"{loop}_tokens_per_s"] > 0
    # Both packed loops read the same stream with the same packer: the same samples and tokens.
    assert result["sailvl_sdpa_tokens"] == result["sailvl_eager_tokens"]
    assert abs(result["hf_padded_samples"] - result["sailvl_sdpa_samples"]) <= 2
    assert result["ratio"] == result["ratio_sdpa"] > 0 and result["ratio_eager"] > 0
    # A kernel that cannot run is reported, not fatal, when it is not the headline (flex_attention, which
    # has no CPU backward in torch 2.13, is timed on GPU only; its packed forward is exact: test_data_packing).
    assert "no_such_kernel" in result["sailvl_no_such_kernel_error"]
    assert result["activation_checkpointing"] is False and result["params"] > 0


def test_bench_shared_model_with_trainer_switches_and_ab_loops(bench_dir):
    """The GPU preset's setup as the trainer does it (FSDP2 on a 1-rank mesh, fused AdamW, no host sync), micro-
    batches, and an A/B loop of a step switch (the unfused optimizer beside the fused one), interleaved on one
    model, repeated; tiny model on CPU."""
    import torch.distributed as dist

    from sailvl.bench.shared_model import bench_shared_model
    from sailvl.bench.switches import parallel_switches
    from sailvl.bench.train import PRESETS

    cfg = dict(PRESETS["sailvl-2b"])
    cfg.update(
        model="tiny", image_size=112, steps=2, warmup_steps=1, pack_tokens=384, batch_size=4, num_workers=0,
        attn=["sdpa"], grad_accum=2, ab=["fused_optimizer"],
        parallel=parallel_switches(
            {"fsdp_one_device": True, "fused_optimizer": True, "host_sync_every_step": False}
        ),
    )  # fmt: skip
    runs = bench_shared_model(bench_dir, cfg, torch.device("cpu"), repeats=2)
    assert not dist.is_initialized()  # the 1-rank group the bench started is gone again
    # One model, built once, timed twice: each repeat has its own loops from the start of the stream.
    assert len(runs) == 2 and runs[0]["sailvl_sdpa_tokens"] == runs[1]["sailvl_sdpa_tokens"]
    result = runs[1]
    assert result["switches"] == {
        "fsdp_one_device": True, "liger_kernels": False, "foreach_grad_clip": False, "fused_optimizer": True,
        "host_sync_every_step": False, "compile_block_mask": False,
    }  # fmt: skip
    loops = ("sailvl_sdpa", "sailvl_sdpa_ab_fused_optimizer")
    for loop in loops:
        # Two micro-batches of 1 pack per step, 2 timed steps, the same stream for every packed loop.
        assert result[f"{loop}_steps"] == 2 and result[f"{loop}_tokens"] == result["sailvl_sdpa_tokens"] > 0
        assert result[f"ratio_{loop.removeprefix('sailvl_')}"] > 0
    assert result["sailvl_sdpa_samples"] > result["hf_padded_samples"] / 2 > 0
    fused = result["ab_fused_optimizer"]
    assert (fused["default"], fused["flipped"], fused["also_changed"]) == (
        True, False, {"host_sync_every_step": True}
    )  # fmt: skip
    assert fused["speedup_of_default"] == pytest.approx(
        fused["tokens_per_s_default"] / fused["tokens_per_s_flipped"], rel=1e-2
    )


def test_bench_shared_model_on_the_realistic_mix(bench_dir):
    """`bench train --mix realistic`: the GPU preset's loops read `bench data`'s realistic mix (photo JPEGs, 1-12
    tiles per image, SFT-like lengths), so the GPU's consumption is measured on the data the loader is timed on;
    tiny model on CPU, 112 px tiles."""
    from sailvl.bench.shared_model import bench_shared_model
    from sailvl.bench.train import PRESETS, bench_train
    from sailvl.errors import SailvlError

    cfg = dict(PRESETS["sailvl-2b"])
    cfg.update(
        model="tiny", image_size=112, steps=2, warmup_steps=1, pack_tokens=1024, batch_size=2, num_workers=0,
        attn=["sdpa"], grad_accum=1, mix="realistic",
    )  # fmt: skip
    (result,) = bench_shared_model(bench_dir / "realistic-run", cfg, torch.device("cpu"))
    assert result["mix"] == "realistic" and result["num_workers"] == 0
    for loop in ("sailvl_sdpa", "hf_padded"):
        # Several tiles per sample (the synthetic world has one per image).
        assert result[f"{loop}_tiles"] > 2 * result[f"{loop}_samples"] > 0, loop
        assert result[f"{loop}_tiles_per_s"] == pytest.approx(
            result[f"{loop}_tiles"] / result[f"{loop}_seconds"], rel=1e-2
        )
    assert (bench_dir / "realistic-run" / "realistic" / "sft.jsonl").is_file()
    with pytest.raises(SailvlError, match="shared-model preset"):
        bench_train("tiny", mix="realistic")
    with pytest.raises(SailvlError, match="--mix must be"):
        bench_train("tiny", mix="photos")


def test_flops_per_token_matches_parameter_count():
    """6 x non-embedding params per token + 6 x LM head per target: the MFU numerator vs the built 2B model."""
    from sailvl.model import build_model
    from sailvl.train.flops import train_step_flops

    model = build_model("sailvl-2b", device="meta")
    llm = model.model.language_model
    non_embedding = sum(
        p.numel() for n, p in llm.named_parameters() if "embed_tokens" not in n and p.dim() == 2
    )
    head = model.lm_head.weight.numel()
    # No attention work (sum L^2 = 0), no tiles: 1000 tokens through the decoder, the LM head at 100 of them.
    flops = train_step_flops(model.config, 1000, 0, 0, 100)
    assert flops == pytest.approx(6 * (1000 * non_embedding + 100 * head), rel=2e-3)
