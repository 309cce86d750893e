"""`sailvl bench train`: non-pad tokens/s of sailvl's packed loop vs a plain padded HF loop, same model and data.

On CPU (`--preset tiny`) both loops train their own copy of the same tiny model (same initial weights, AdamW, same
LR, fp32, grad clip 1.0, one process); on GPU (`--preset sailvl-2b`) every sailvl attention kernel and the baseline
train one meta-built SAIL-VL-2B-shaped model (bf16 autocast, MFU reported). Every loop reads the same synthetic
SFT mix (the world's `sft.jsonl` short answers + `pretrain.jsonl` captions, so sample lengths vary) through
`sailvl.data.build_loader`, in the same stream order:

- sailvl: best-fit packed rows (`pack_tokens` long, `packs_per_batch` rows per step, block-diagonal attention)
  through `sailvl.train.step.train_step` (sum-CE / target count, logits only at target positions).
- baseline: pad-to-longest batches of `batch_size` samples, `model(**batch, labels=labels).loss.backward()`,
  `clip_grad_norm_`, `AdamW.step()` - what a straightforward HF loop does (logits at every position, pads included).

The defaults give both loops about the same number of samples per optimizer step (3 x 256-token packs hold ~8
samples of this mix, whose samples are 62-143 tokens; baseline batch 8). 256-token rows keep the O(L^2)
block-diagonal attention of a packed row small on CPU: fuller packs do not pay for the masked-out attention
(ratios per row length in BENCHMARKS.md, "Training loop"). The loops are interleaved
step by step (the baseline catching up in samples after each sailvl step) so load from other processes hits both
alike; data loading is inside the timed region of both, and reported separately (`*_load_s`). With `--mix
realistic` (GPU presets) both loops read `bench data`'s realistic mix instead (`sailvl.bench.mix`), so the GPU's
samples/s and tiles/s there are the denominator of the loader's ratio on the same data.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from sailvl.bench.loops import TimedLoop, bench_world, data_configs, padded_hf_step
from sailvl.bench.profile import profile_steps
from sailvl.bench.shared_model import bench_shared_model
from sailvl.bench.switches import (
    MODEL_SWITCHES,
    check_ab_name,
    parallel_switches,
    resolved_switches,
    sail_step_fn,
)
from sailvl.data.loader import build_loader
from sailvl.data.processor import SailVLProcessor
from sailvl.errors import SailvlError
from sailvl.model import load_model
from sailvl.synth.tiny_model import make_tiny_model_dir
from sailvl.train.parallel import (
    DistInfo,
    mask_format_for,
    set_attention,
    step_switches,
)

# tiny: the CPU comparison (two model copies, loops interleaved step by step against machine noise).
# sailvl-2b: the GPU figure (SAIL-VL-2B shapes, random init, bf16 autocast over fp32 master weights, 448 px tiles,
# 8192-token packs vs pad-to-longest batches of about the same samples per step; one model and optimizer shared
# by the loops, interleaved step by step: two 2B copies with their AdamW states would not fit).
PRESETS = {
    "tiny": {
        "model": "tiny",
        "device": "cpu",
        "image_size": 112,
        "world_size": 300,
        "steps": 60,
        "warmup_steps": 1,
        "pack_tokens": 256,
        "packs_per_batch": 3,
        "grad_accum": 1,
        "batch_size": 8,
        "num_workers": 0,
        "attn": ["sdpa"],
        "compile": False,
    },
    "sailvl-2b": {
        "model": "sailvl-2b",
        "device": "cuda",
        "image_size": 448,
        "world_size": 400,
        "steps": 8,
        "warmup_steps": 2,
        "pack_tokens": 8192,
        "packs_per_batch": 1,
        # Four 8192-token packs per optimizer step: the optimizer, clipping and step overheads are paid once per
        # ~100 samples (what a real run's global batch does), not once per pack. The baseline accumulates alike.
        "grad_accum": 4,
        "batch_size": 24,
        "num_workers": 8,
        "attn": ["flex_attention", "sdpa"],
        "compile": False,
    },
}
# SAIL-VL2-2B's shape (AIMv2-Huge, SwiGLU ViT + Qwen3-1.7B), otherwise the sailvl-2b bench.
PRESETS["sailvl2-2b"] = {**PRESETS["sailvl-2b"], "model": "sailvl2-2b"}
# The padded baseline's batch on the realistic mix: its samples average ~2270 tokens (8 tiles), so 2 padded samples
# take about the token slots of one 8192-token pack (24 would not fit next to a 2B model's activations).
REALISTIC_BATCH = 2

NOTES = (
    "non-pad tokens/s, same model init, data stream, LR and ~samples/step; "
    "sailvl: {pack_tokens}-token best-fit packs x {packs_per_batch} per micro-batch, {grad_accum} micro-batch(es) "
    "per step (block-diagonal attention, logits only at targets); baseline: pad-to-longest batches of "
    "{batch_size} samples, {grad_accum} per step, HF loss over full logits; loading timed inside both; first "
    "{warmup_steps} step(s) of each untimed"
)
GPU_NOTES = (
    "; GPU: bf16 (FSDP2 MixedPrecisionPolicy over fp32 master weights when fsdp_one_device, else autocast), "
    "the step switches in `switches`, loops interleaved on one model; "
    "mfu = model FLOPs (sailvl.train.flops: non-pad tokens, LM head where computed, attention as sum of "
    "per-sample L^2, ViT + projector per tile) / step time / dense bf16 peak"
)


def _settings(preset: str, overrides: dict) -> dict:
    if preset not in PRESETS:
        raise SailvlError(f"unknown bench preset {preset!r}; presets: {', '.join(PRESETS)}")
    cfg = dict(PRESETS[preset])
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "attn":
            cfg[key] = list(value)
            continue
        if key == "num_workers":
            if value < 0:
                raise SailvlError(f"--workers must be 0 (load in the main process) or more, got {value}")
        elif value < 1:
            raise SailvlError(f"--{key.replace('_', '-')} must be positive, got {value}")
        cfg[key] = value
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise SailvlError(f"bench preset {preset!r} needs a CUDA GPU; use --preset tiny on CPU")
    return cfg


def bench_train(
    preset: str = "tiny",
    steps: int | None = None,
    work_dir: str | Path | None = None,
    pack_tokens: int | None = None,
    packs_per_batch: int | None = None,
    batch_size: int | None = None,
    attn: list[str] | None = None,
    compile: bool = False,
    repeats: int = 3,
    profile: str | Path | None = None,
    grad_accum: int | None = None,
    switches: dict[str, bool] | None = None,
    ab: list[str] | None = None,
    mix: str = "synthetic",
    workers: int | None = None,
) -> dict:
    """Train the same model on the synthetic SFT mix with both loops; report non-pad tokens/s of each.

    `steps` is sailvl's timed optimizer steps (the baseline steps until it has seen as many samples);
    `pack_tokens`, `packs_per_batch`, `batch_size` and `attn` (attention kernels of the sailvl loop, each
    timed; the first is the headline) override the preset; `compile` compiles every ViT and decoder block
    (shared-model presets; the baseline then runs compiled blocks too). The world and model are generated in `work_dir`
    (reused when present) or a temporary directory. Returns a JSON-safe dict; `ratio` is sailvl's tokens/s
    over the baseline's (on GPU also `mfu` per loop, and `ratio_<kernel>` for every kernel timed).
    The interleaved comparison runs `repeats` times: the report is the run with the median ratio, plus every
    run's ratio (`ratio_runs`) and their spread (max - min). `profile`: a directory for a torch.profiler trace of
    3 sailvl steps after the last run (`trace.json`, `top_kernels.txt`; the top 15 in `profile`).
    `grad_accum`: micro-batches per optimizer step (both loops). `switches`: recipe `parallel.*` speed switches
    (`MODEL_SWITCHES`, `STEP_SWITCHES`) over the trainer's device defaults; the run reports them resolved in
    `switches`. `ab`: step switches each timed flipped in an extra interleaved loop of the headline kernel
    (shared-model presets), reported as `ab_<name>` with the default's speedup over the flipped setting.
    `mix`: `synthetic` (the world above) or `realistic` (shared-model presets: `sailvl.bench.mix`'s photos with
    1-12 tiles per image and SFT-like lengths, what `bench data` times; the baseline then pads
    `REALISTIC_BATCH` samples unless `batch_size` is given). `workers`: loader processes (default: preset's).
    """
    if repeats < 1:
        raise SailvlError(f"--repeats must be positive, got {repeats}")
    cfg = _settings(
        preset,
        {
            "steps": steps,
            "pack_tokens": pack_tokens,
            "packs_per_batch": packs_per_batch,
            "batch_size": batch_size,
            "attn": attn,
            "grad_accum": grad_accum,
            "num_workers": workers,
        },
    )
    if mix not in ("synthetic", "realistic"):
        raise SailvlError(f"--mix must be synthetic or realistic, got {mix!r}")
    cfg["mix"] = mix
    if mix == "realistic":
        if cfg["device"] == "cpu":
            raise SailvlError(f"--mix realistic needs a shared-model preset (sailvl-2b), not {preset!r}")
        if batch_size is None:
            cfg["batch_size"] = REALISTIC_BATCH
    cfg["compile"] = cfg["compile"] or compile
    cfg["parallel"] = parallel_switches(switches)
    cfg["ab"] = list(ab or [])
    if cfg["device"] == "cpu" and (cfg["ab"] or any(getattr(cfg["parallel"], n) for n in MODEL_SWITCHES)):
        raise SailvlError(
            f"bench preset {preset!r} trains two model copies: --ab and the model switches "
            f"({', '.join(MODEL_SWITCHES)}) need a shared-model preset (sailvl-2b)"
        )
    for name in cfg["ab"]:
        check_ab_name(name)  # before anything is built
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory()
        work_dir = tmp.name
    try:
        if cfg["device"] == "cpu":
            runs = [
                _bench_interleaved(Path(work_dir), cfg, profile if i == repeats - 1 else None)
                for i in range(repeats)
            ]
        else:
            device = torch.device("cuda", torch.cuda.current_device())
            runs = bench_shared_model(Path(work_dir), cfg, device, profile, repeats)
    finally:
        if tmp is not None:
            tmp.cleanup()
    ratios = [r["ratio"] for r in runs]
    result = sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]
    if profile is not None:
        result["profile"] = runs[-1]["profile"]
    result = {
        "preset": preset,
        **result,
        "ratio_runs": ratios,
        "ratio_spread": round(max(ratios) - min(ratios), 3),
    }
    result.update({k: cfg[k] for k in ("pack_tokens", "packs_per_batch", "grad_accum", "batch_size")})
    result["notes"] = NOTES.format(**cfg) + (GPU_NOTES if cfg["device"] == "cuda" else "")
    return result


def _bench_interleaved(work: Path, cfg: dict, profile: str | Path | None = None) -> dict:
    """Two copies of the tiny model, fp32, the loops interleaved step by step so machine noise hits both."""
    world = bench_world(work, cfg)
    if not (work / "model" / "config.json").is_file():
        make_tiny_model_dir(world, work / "model", seed=0)
    processor = SailVLProcessor.from_pretrained(work / "model")
    kernel = cfg["attn"][0]
    packed, padded = data_configs(world, cfg, mask_format_for(kernel))
    info = DistInfo()
    steps = step_switches(cfg["parallel"], info.device)
    sail_model = load_model(work / "model", dtype=torch.float32).train()
    set_attention(sail_model, kernel, info.device)
    sail_opt = torch.optim.AdamW(sail_model.parameters(), lr=1e-3, fused=steps.fused_optimizer)
    hf_model = load_model(work / "model", dtype=torch.float32).train()
    hf_opt = torch.optim.AdamW(hf_model.parameters(), lr=1e-3)

    sail = TimedLoop(
        iter(build_loader(packed, processor)),
        sail_step_fn(sail_model, sail_opt, info, torch.float32, steps),
        info.device,
        micro=cfg["grad_accum"],
    )
    hf_step = padded_hf_step(hf_model, hf_opt, info.device, torch.float32)
    hf = TimedLoop(iter(build_loader(padded, processor)), hf_step, info.device, micro=cfg["grad_accum"])
    torch.manual_seed(0)
    for _ in range(cfg["warmup_steps"]):
        sail.warm_up()
        hf.warm_up()
    for _ in range(cfg["steps"]):
        sail.step()
        # The baseline keeps pace in samples, so both loops train on the same number of samples.
        while hf.samples + cfg["grad_accum"] * cfg["batch_size"] / 2 <= sail.samples:
            hf.step()
    result = {
        "device": str(info.device),
        "threads": torch.get_num_threads(),
        "attn": kernel,
        "mix": "synthetic",
    }
    result["switches"] = resolved_switches(steps, False, False)
    result.update(sail.report("sailvl"))
    result.update(hf.report("hf_padded"))
    result["ratio"] = round(sail.tokens_per_s() / hf.tokens_per_s(), 3)
    if profile is not None:
        result["profile"] = profile_steps(lambda: sail.step_fn(sail.next_batches()), 3, profile, info.device)
    return result
