"""CLI commands for models: `sailvl model info`, `sailvl convert`, `sailvl chat`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sailvl.cli.app import app, model_app


@model_app.command("info")
def model_info(
    preset_or_dir: Annotated[
        str, typer.Argument(help="A preset name (tiny, sailvl-2b, ...) or a model directory.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    trainable: Annotated[
        list[str] | None,
        typer.Option(
            "--trainable", help="A stage's `trainable` glob (repeatable): also count what it trains."
        ),
    ] = None,
    lora_target: Annotated[
        list[str] | None,
        typer.Option(
            "--lora-target", help="A stage's `lora.targets` glob (repeatable): count with adapters."
        ),
    ] = None,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank for --lora-target.")] = 8,
) -> None:
    """Parameter counts (vision, projector, llm, total) and image tokens per tile, built on the meta device;
    for a released SAIL-VL checkpoint (as shipped or converted) also its family, tower, LLM, chat template and
    tile settings; with --trainable / --lora-target, also the parameters such a stage trains (LoRA: adapters,
    base frozen)."""
    from sailvl.data.processor_files import release_tile_settings
    from sailvl.model.info import model_info as compute_info

    info = compute_info(preset_or_dir, trainable, lora_target, lora_r)
    if "family" in info:
        info |= release_tile_settings(Path(preset_or_dir)) or {}
    if as_json:
        print(json.dumps(info))
        return
    counts = ("vision", "projector", "llm", "total", "adapters", "trainable")
    for key, value in info.items():
        shown = f"{value:,} ({value / 1e6:.2f}M)" if key in counts else value
        print(f"{key:>22}: {shown}")


@app.command("convert")
def convert(
    src: Annotated[Path, typer.Argument(help="Source model directory.")],
    dst: Annotated[Path, typer.Argument(help="Destination directory (created).")],
    src_format: Annotated[
        str,
        typer.Option(
            "--from", help="Source layout: sailvl-remote (released SAIL-VL) or hf (a sailvl export)."
        ),
    ] = "sailvl-remote",
    dst_format: Annotated[str, typer.Option("--to", help="Destination layout: hf or sailvl-remote.")] = "hf",
) -> None:
    """Convert between a released SAIL-VL checkpoint (SAIL-VL, 1.5 / 1.6, SAIL-VL2 and -Thinking) and sailvl's
    (transformers' InternVL) layout.

    `hf` output is model_type `internvl` for an InternViT tower and `sailvl_internvl` for AIMv2 / SAILViT
    (README table). Back to `sailvl-remote`, the processor's chat template and tile settings are written."""
    from sailvl.data.processor import write_processor_files
    from sailvl.data.processor_files import release_tile_settings
    from sailvl.model.convert import convert_checkpoint

    tiles = release_tile_settings(src) if src_format == "hf" and src.is_dir() else None
    out = convert_checkpoint(src, dst, src_format, dst_format, tiles=tiles)
    print(f"wrote {dst_format} checkpoint to {out}")
    if dst_format == "hf" and write_processor_files(out):
        print(
            "added processor files (preprocessor_config.json, processor_config.json, sailvl_processor.json)"
        )


@app.command("chat")
def chat(
    question: Annotated[
        str | None, typer.Argument(help="The question; without it an interactive prompt opens.")
    ] = None,
    model: Annotated[
        Path, typer.Option("--model", help="Model directory (weights, tokenizer, processor).")
    ] = Path("."),
    image: Annotated[
        list[Path] | None, typer.Option("--image", help="An image file; repeat for several.")
    ] = None,
    max_tiles: Annotated[
        int | None, typer.Option(help="Most tiles per image (default: the processor's).")
    ] = None,
    msac: Annotated[bool, typer.Option("--msac", help="Add the MSAC second tiling pass.")] = False,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 means greedy.")] = 0.0,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens per answer.")] = 256,
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto.")] = "auto",
    think: Annotated[
        str, typer.Option("--think", help="show or hide a <think>...</think> trace before the answer.")
    ] = "show",
) -> None:
    """Chat with a model about images, streaming the answer (greedy unless --temperature > 0)."""
    from sailvl.infer.chat import ChatSettings, run_chat_command

    settings = ChatSettings(
        max_new_tokens=max_new_tokens,
        do_sample=temperature > 0,
        temperature=temperature,
        max_tiles=max_tiles,
        msac=msac,
    )
    run_chat_command(model, [str(p) for p in image or []], settings, question, device, think)
