"""The shared-model loops of `sailvl bench train` (GPU presets; the tiny model on CPU in tests): one random-init
model set up as the trainer does, every attention kernel, A/B variant and the padded HF baseline interleaved on it."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from sailvl.bench.loops import TimedLoop, bench_world, data_configs, padded_hf_step, realistic_configs
from sailvl.bench.mix import realistic_processor, write_realistic_mix
from sailvl.bench.profile import profile_steps
from sailvl.bench.switches import STEP_SWITCHES, flip_switch, resolved_switches, sail_step_fn
from sailvl.data.loader import build_loader
from sailvl.data.processor import SailVLProcessor
from sailvl.model import build_model
from sailvl.synth.tiny_model import train_tokenizer, world_texts
from sailvl.train.flops import sum_squares, train_step_flops, trainable_parts
from sailvl.train.metrics import peak_flops
from sailvl.train.parallel import (
    DistInfo,
    apply_activation_checkpointing,
    apply_liger_kernels,
    init_distributed,
    mask_format_for,
    materialize,
    parallelize,
    param_dtype,
    set_attention,
    step_switches,
)
from sailvl.train.recipe import ParallelConfig


def bench_shared_model(
    work: Path, cfg: dict, device: torch.device, profile: str | Path | None = None, repeats: int = 1
) -> list[dict]:
    """One random-init model of the preset built on the meta device and materialised on `device` (bf16 on GPU,
    fp32 on CPU), set up as the trainer does (`cfg["parallel"]`: FSDP2 on a 1-rank mesh, Liger kernels, step
    switches); every sailvl kernel, every `cfg["ab"]` variant and the padded HF baseline train that one model,
    interleaved, `repeats` times (one result per repeat; the model is built once)."""
    parallel = cfg.get("parallel") or ParallelConfig()
    cuda = device.type == "cuda"
    one_device = cuda if parallel.fsdp_one_device is None else parallel.fsdp_one_device
    started_group = one_device and not dist.is_initialized()
    info = init_distributed(parallel.backend, one_device_mesh=True) if one_device else DistInfo(device=device)
    try:
        return _shared_model_run(work, cfg, info, parallel, profile, repeats)
    finally:
        if started_group:
            dist.destroy_process_group()


def _shared_model_run(
    work: Path, cfg: dict, info: DistInfo, parallel: ParallelConfig, profile: str | Path | None, repeats: int
) -> list[dict]:
    device = info.device
    mix_name = cfg.get("mix", "synthetic")
    if mix_name == "realistic":
        # Photo JPEGs with 1-12 tiles per image and SFT-like lengths (`sailvl.bench.mix`), read by `num_workers`
        # worker processes as a training run reads them.
        mix = write_realistic_mix(work / "realistic")
        tokenizer = realistic_processor().tokenizer

        def loader_configs(mask_format: str):
            return realistic_configs(mix, cfg, mask_format)
    else:
        world = bench_world(work, cfg)
        tokenizer = train_tokenizer(world_texts(world))

        def loader_configs(mask_format: str):
            return data_configs(world, cfg, mask_format)

    model = build_model(cfg["model"], device="meta", seed=0, tokenizer=tokenizer)
    processor = SailVLProcessor.for_model(tokenizer, model.config)
    dtype = param_dtype(device, parallel.mixed_precision)
    torch.manual_seed(0)
    model.train()
    if parallel.liger_kernels:
        apply_liger_kernels(model)
    # The trainer's order: compile, fully_shard per block and root (with a 1-rank mesh), then materialise.
    model = parallelize(model, info, dtype, compile=cfg["compile"])
    materialize(model, device)
    steps = step_switches(parallel, device)
    variants = {"": (steps, {})}
    for name in cfg.get("ab", []):
        variants[name] = flip_switch(steps, name)
    optimizers = {}
    for switches, _ in variants.values():
        if switches.fused_optimizer not in optimizers:
            optimizers[switches.fused_optimizer] = torch.optim.AdamW(
                model.parameters(), lr=1e-5, fused=switches.fused_optimizer
            )
    optimizer = optimizers[steps.fused_optimizer]
    peak = peak_flops(device)
    trainable = trainable_parts(model)
    micro = cfg.get("grad_accum", 1)

    def flops_fn(head_at_targets: bool):
        """Step FLOPs of a batch; sailvl's loop computes the LM head at targets, the HF loop at every real token."""

        def flops(batch: dict) -> float:
            tiles = 0 if batch.get("pixel_values") is None else int(batch["pixel_values"].shape[0])
            real = int(batch["num_real_tokens"])
            head = int(batch["num_target_tokens"]) if head_at_targets else real
            sq = sum_squares(batch["sample_lengths"])
            return train_step_flops(model.config, real, sq, tiles, head, trainable)

        return flops

    hf_step = padded_hf_step(model, optimizer, device, dtype)

    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "model": cfg["model"],
        "params": sum(p.numel() for p in model.parameters()),
        "mix": mix_name,
        "num_workers": cfg["num_workers"],
        "peak_flops": peak,
        "switches": resolved_switches(steps, info.mesh is not None, parallel.liger_kernels),
    }

    def run_loops(profile: str | Path | None) -> dict:
        """Every kernel's loop, the A/B variants and the baseline, interleaved step by step (drift in clocks hits
        all alike); fresh loops and loaders each call."""
        out = {}
        loops = {}  # label -> (kernel, loop)
        headline_kernel = cfg["attn"][0]
        labels = [(k, "") for k in cfg["attn"]] + [(headline_kernel, n) for n in cfg.get("ab", [])]
        for kernel, variant in labels:
            label = kernel if not variant else f"{kernel}_ab_{variant}"
            packed, _ = loader_configs(mask_format_for(kernel))
            switches = variants[variant][0]
            loop = TimedLoop(
                iter(build_loader(packed, processor)),
                sail_step_fn(model, optimizers[switches.fused_optimizer], info, dtype, switches),
                device,
                flops_fn(True),
                micro,
            )
            try:
                set_attention(model, kernel)
                for _ in range(cfg["warmup_steps"]):
                    loop.warm_up()
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # a further kernel that fails (e.g. no compiler) must not lose the rest
                if label == headline_kernel:
                    raise
                out[f"sailvl_{label}_error"] = f"{type(exc).__name__}: {exc}"[:500]
                for opt in optimizers.values():
                    opt.zero_grad(set_to_none=True)
                continue
            loops[label] = (kernel, loop)
        _, padded = loader_configs("bool")
        hf = TimedLoop(iter(build_loader(padded, processor)), hf_step, device, flops_fn(False), micro)
        set_attention(model, "sdpa")
        for _ in range(cfg["warmup_steps"]):
            hf.warm_up()
        headline = loops[headline_kernel][1]
        for _ in range(cfg["steps"]):
            for kernel, loop in loops.values():
                set_attention(model, kernel)
                loop.step()
            set_attention(model, "sdpa")
            # The baseline keeps pace in samples with the headline loop.
            while hf.samples + micro * cfg["batch_size"] / 2 <= headline.samples:
                hf.step()
        for label, (_, loop) in loops.items():
            out.update(loop.report(f"sailvl_{label}", peak))
        out.update(hf.report("hf_padded", peak))
        if device.type == "cuda":
            out["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 1)
        for label, (_, loop) in loops.items():
            out[f"ratio_{label}"] = round(loop.tokens_per_s() / hf.tokens_per_s(), 3)
        out["ratio"] = out[f"ratio_{headline_kernel}"]
        for name in cfg.get("ab", []):
            label = f"{headline_kernel}_ab_{name}"
            if label not in loops:
                continue
            flipped, also = variants[name]
            field = STEP_SWITCHES[name]
            out[f"ab_{name}"] = {
                "default": getattr(steps, field),
                "flipped": getattr(flipped, field),
                "also_changed": also,
                "tokens_per_s_default": round(headline.tokens_per_s(), 1),
                "tokens_per_s_flipped": round(loops[label][1].tokens_per_s(), 1),
                "speedup_of_default": round(headline.tokens_per_s() / loops[label][1].tokens_per_s(), 3),
            }
        if profile is not None:
            set_attention(model, headline_kernel)
            out["profile"] = profile_steps(
                lambda: headline.step_fn(headline.next_batches()), 3, profile, device
            )
        return out

    checkpointing = False  # the fastest setting; recompute blocks only when the steps do not fit
    last = profile if repeats == 1 else None
    try:
        first = run_loops(last)
    except torch.OutOfMemoryError:
        first = None  # retried below, outside the handler, so the failed step's tensors are freed first
    if first is None:
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        checkpointing = True
        apply_activation_checkpointing(model)
        first = run_loops(last)
    timed = [first] + [run_loops(profile if i == repeats - 1 else None) for i in range(1, repeats)]
    result.update(activation_checkpointing=checkpointing, compile=cfg["compile"], attn=cfg["attn"][0])
    return [{**result, **run} for run in timed]
