"""CLI: `sailvl bench data` (loader throughput, packing efficiency, tiler speed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sailvl.cli.app import bench_app


@bench_app.command("data")
def bench_data(
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML with a DataConfig (top level or under `data:`).")
    ] = None,
    processor: Annotated[
        Path | None, typer.Option("--processor", help="Directory saved by SailVLProcessor.save_pretrained.")
    ] = None,
    batches: Annotated[int, typer.Option("--batches", min=1, help="Packed batches to time.")] = 20,
    tiler_seconds: Annotated[float, typer.Option("--tiler-seconds", help="Seconds per tiler timing.")] = 2.0,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Config override key.sub=value.")
    ] = None,
    mix: Annotated[
        str, typer.Option("--mix", help="Built-in mix without --config: realistic (448 px photos) or tiny.")
    ] = "realistic",
    workers: Annotated[
        int | None, typer.Option("--workers", min=0, help="Loader processes (default: the config's).")
    ] = None,
    ranks: Annotated[
        int | None,
        typer.Option("--ranks", min=1, help="Report per-rank cost imbalance, dealt vs balanced packs."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Samples/s, tokens/s and packing efficiency vs pad-to-longest, plus tiler images/s vs plain PIL."""
    from sailvl.bench.data import bench_data as run_bench
    from sailvl.config import apply_overrides, load_yaml, parse_config
    from sailvl.data.config import DataConfig

    data_config = None
    if config is not None:
        raw = load_yaml(config)
        raw = raw.get("data", raw) if "sources" not in raw else raw
        data_config = parse_config(DataConfig, apply_overrides(raw, overrides))
    proc = None
    if processor is not None:
        from sailvl.data.processor import SailVLProcessor

        proc = SailVLProcessor.from_pretrained(processor)
    result = run_bench(data_config, proc, batches, tiler_seconds, mix, workers, ranks)
    if as_json:
        print(json.dumps(result))
        return
    for name in ("packed", "pad_to_longest"):
        r = result[name]
        print(
            f"{name:>15}: {r['samples_per_s']:8.1f} samples/s {r['tokens_per_s']:10.1f} tokens/s "
            f"{r['tiles_per_s']:8.1f} tiles/s efficiency {r['padding_efficiency']:.3f}"
        )
    if "ranks" in result:
        print(f"{'ranks':>15}: {result['ranks']}")
    t = result["tiler"]
    print(
        f"{'tiler':>15}: {t['sailvl_images_per_s']:.1f} images/s vs PIL baseline "
        f"{t['pil_baseline_images_per_s']:.1f} ({t['speedup']}x)"
    )
    c = result["text_cache"]
    print(
        f"{'text cache':>15}: {c['warm_cache_samples_per_s']:.1f} samples/s warm vs "
        f"{c['uncached_samples_per_s']:.1f} without ({c['speedup']}x, hit rate {c['hit_rate']})"
    )
