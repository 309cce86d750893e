"""`sailvl train`, `sailvl export-vit` and `sailvl bench train` commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sailvl.cli.app import app, bench_app
from sailvl.errors import SailvlError


@app.command("train")
def train_command(
    recipe: str = typer.Argument(
        ..., help="Recipe YAML, or a shipped recipe name (tiny-sailvit, sailvl-2b, ...)."
    ),
    overrides: list[str] = typer.Argument(
        None, help="key=value overrides, e.g. vars.world=runs/world stages.0.lr=1e-3"
    ),
    stage: str = typer.Option(None, "--stage", help="Run only this stage (default: all, in order)."),
    resume: str = typer.Option(
        None, "--resume", help="'auto' (newest complete checkpoint) or a checkpoint dir."
    ),
    resume_ignore_data: bool = typer.Option(
        False,
        "--resume-ignore-data",
        help="Resume even though the stage's data changed since the checkpoint (sources, mixture weights, "
        "pack length, tokenizer); the change is logged, saved positions are kept, buffered samples dropped.",
    ),
    out: Path = typer.Option(
        Path("runs/train"), "--out", help="Output directory (checkpoints, exports, metrics)."
    ),
    keep_adapters: bool = typer.Option(
        False,
        "--keep-adapters",
        help="Stages with `lora`: also write the PEFT adapter directory (export/adapter) beside the merged export.",
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Only validate the whole recipe (data blocks and files, model paths, globs, budgets); reads no weights.",
    ),
) -> None:
    """Train a recipe's stages; the same command runs under `torchrun --nproc_per_node N -m sailvl.cli train ...`."""
    from sailvl.train.check import check_recipe
    from sailvl.train.recipe import keep_all_adapters
    from sailvl.train.recipe_files import load_recipe
    from sailvl.train.trainer import train_recipe

    loaded = load_recipe(recipe, overrides or [])
    if keep_adapters:
        keep_all_adapters(loaded)
    if check:
        for line in check_recipe(loaded, out):
            typer.echo(line)
        return
    exports = train_recipe(loaded, out, stage=stage, resume=resume, resume_ignore_data=resume_ignore_data)
    for path in exports:
        typer.echo(f"exported {path}")


@app.command("export-vit")
def export_vit_command(
    ckpt: Path = typer.Argument(
        ..., help="A stage export directory or a training checkpoint (step-N) directory."
    ),
    out_dir: Path = typer.Argument(
        ..., help="Where to write the vision tower (AutoModel.from_pretrained loads it)."
    ),
) -> None:
    """Save the vision tower alone: the SAILViT deliverable."""
    from sailvl.train.export import export_vit

    typer.echo(f"vision tower saved to {export_vit(ckpt, out_dir)}")


@bench_app.command("train")
def bench_train_command(
    preset: str = typer.Option(
        "tiny",
        "--preset",
        help="tiny (CPU, two interleaved loops), sailvl-2b or sailvl2-2b (GPU: bf16, 448 px tiles, 8192-token packs, MFU).",
    ),
    steps: int = typer.Option(None, "--steps", help="Timed optimizer steps per loop (default: preset's)."),
    pack_tokens: int = typer.Option(None, "--pack-tokens", help="Packed row length (default: preset's)."),
    batch_size: int = typer.Option(
        None, "--batch-size", help="Baseline samples per batch (default: preset's)."
    ),
    attn: list[str] = typer.Option(
        None,
        "--attn",
        help="Attention kernel of sailvl's loop (sdpa, flex_attention, eager, ...); repeatable, first is the headline.",
    ),
    compile: bool = typer.Option(
        False, "--compile", help="torch.compile every ViT and decoder block (GPU preset; both loops)."
    ),
    repeats: int = typer.Option(
        3, "--repeats", help="Interleaved comparisons to run; the spread is reported."
    ),
    profile: Path = typer.Option(
        None,
        "--profile",
        help="Write a torch.profiler chrome trace and top-kernels table of sailvl steps here.",
    ),
    explain: bool = typer.Option(
        False,
        "--explain",
        help="Only report torch.compile graph breaks of one ViT / decoder block of the preset (on CUDA when there "
        "is one; --switch liger_kernels=true with Liger's kernels).",
    ),
    grad_accum: int = typer.Option(
        None, "--grad-accum", help="Micro-batches per optimizer step, both loops (default: preset's)."
    ),
    switch: list[str] = typer.Option(
        None,
        "--switch",
        help="A recipe parallel.* speed switch for the run, NAME=true|false (fsdp_one_device, liger_kernels, "
        "foreach_grad_clip, fused_optimizer, host_sync_every_step, compile_block_mask); repeatable.",
    ),
    ab: list[str] = typer.Option(
        None,
        "--ab",
        help="A step switch to A/B within the run: an extra interleaved loop with it flipped; repeatable.",
    ),
    mix: str = typer.Option(
        "synthetic",
        "--mix",
        help="synthetic (the world, one tile per image) or realistic (photos, 1-12 tiles, SFT-like lengths: what "
        "`bench data` times; GPU presets).",
    ),
    workers: int = typer.Option(None, "--workers", help="Loader worker processes (default: preset's)."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON result."),
    work_dir: Path = typer.Option(
        None, "--work-dir", help="Reuse a directory for the synthetic world and model."
    ),
) -> None:
    """Effective (non-pad) tokens/s of sailvl's packed loop vs a plain padded HF loop, same model and data."""
    from sailvl.bench.train import PRESETS, bench_train

    if explain:
        from sailvl.bench.graph_breaks import explain_graph_breaks
        from sailvl.bench.switches import parallel_switches

        chosen = _switches(switch or [])
        if set(chosen) - {"liger_kernels"}:
            raise SailvlError(
                "--explain takes only --switch liger_kernels=true|false (the other switches do not change a "
                "block's graph)"
            )
        liger = bool(parallel_switches(chosen).liger_kernels)
        model = PRESETS[preset]["model"] if preset in PRESETS else preset
        typer.echo(json.dumps(explain_graph_breaks(model, liger=liger), indent=2))
        return
    result = bench_train(
        preset=preset,
        steps=steps,
        work_dir=work_dir,
        pack_tokens=pack_tokens,
        batch_size=batch_size,
        attn=attn or None,
        compile=compile,
        repeats=repeats,
        profile=profile,
        grad_accum=grad_accum,
        switches=_switches(switch or []),
        ab=ab or None,
        mix=mix,
        workers=workers,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        typer.echo(f"{key}: {value}")


def _switches(items: list[str]) -> dict[str, str]:
    """`NAME=VALUE` pairs of `--switch` (values are validated as the recipe's `parallel` fields)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--switch takes NAME=true|false, got {item!r}")
        out[name.strip()] = value.strip()
    return out
