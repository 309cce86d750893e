"""`sailvl eval`, `sailvl scaling fit` and `sailvl data quick-eval` commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sailvl.cli.app import app, data_app, scaling_app


@app.command("eval")
def eval_command(
    model: Path = typer.Option(
        ..., "--model", help="Model directory (weights, config, tokenizer, processor)."
    ),
    bench: list[str] = typer.Option(
        ..., "--bench", help="Benchmark name (looked up as DATA_DIR/NAME.tsv) or a .tsv path; repeatable."
    ),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Directory holding the VLMEvalKit TSVs (default: current directory)."
    ),
    max_tiles: int = typer.Option(
        None,
        "--max-tiles",
        help="Max tiles per image for every benchmark (default: the preset's per-benchmark value).",
    ),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts per generate call."),
    out: Path = typer.Option(
        None, "--out", help="Output directory for predictions and results.json (default: MODEL/eval)."
    ),
    judge: str = typer.Option(
        None,
        "--judge",
        help="Judge for MMVet / MathVista (and the MCQ judge fallback): openai:MODEL or "
        "openai:MODEL@BASE_URL (key from OPENAI_API_KEY; any OpenAI-compatible server) or a model directory.",
    ),
    limit: int = typer.Option(None, "--limit", help="Only the first N rows of each benchmark (smoke tests)."),
    device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda."),
    preset: str = typer.Option(
        "vlmevalkit",
        "--preset",
        help="Per-benchmark tile caps / max_new_tokens: vlmevalkit (InternVL defaults) or sailvl "
        "(VLMEvalKit's SAIL-VL adapter).",
    ),
    msac: bool = typer.Option(
        False, "--msac", help="MSAC second tiling pass on single-image samples (SAIL-VL 1.5+ inference)."
    ),
    max_new_tokens: int = typer.Option(
        None, "--max-new-tokens", help="Override every benchmark's generation budget (tokens)."
    ),
    backend: str = typer.Option(
        "transformers", "--backend", help="Generation backend: transformers or vllm."
    ),
    matching: str = typer.Option(
        "exact", "--matching", help="MCQ / yes-no answer matching policy (see sailvl.eval.matching)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the judge's sampled retries."),
    forced_choice: bool = typer.Option(
        False,
        "--forced-choice",
        help="Also score open-answer benchmarks by likelihood: the most likely of the task's answers (results.json "
        "forced_choice per benchmark; a secondary score for small models).",
    ),
) -> None:
    """Run a model on local benchmark TSVs; predictions are cached per index, so a rerun resumes.

    The cache is pinned to what shaped the answers (model files, preset, tiles, max_new_tokens, msac, backend,
    prompt version, benchmark file): a rerun into the same --out with other settings is refused, naming them.

    Under `torchrun --nproc_per_node N -m sailvl.cli eval ...` the items are split across the ranks; rank 0 writes the same results.json as one process."""
    from rich.console import Console

    from sailvl.eval.distributed import sharded_from_env
    from sailvl.eval.model_eval import evaluate_model
    from sailvl.eval.runner import results_table

    with sharded_from_env() as shard:
        results = evaluate_model(
            model, bench, out, data_dir, max_tiles, batch_size, judge, limit, shard.device_for(device),
            preset=preset, msac=msac, max_new_tokens=max_new_tokens, backend=backend,
            matching=matching, seed=seed, shard=shard, forced_choice=forced_choice,
        )  # fmt: skip
    if results is None:
        return  # not rank 0: its predictions were gathered there
    Console().print(results_table(results))
    typer.echo(f"results written to {(out or model / 'eval') / 'results.json'}")


@scaling_app.command("fit")
def scaling_fit_command(
    results: list[Path] = typer.Argument(
        ..., help="results.json files (or eval output dirs) of a checkpoint series."
    ),
    x: str = typer.Option(
        "tokens",
        "--x",
        help="Budget axis: tokens or samples seen over all stages so far (each checkpoint's trainer state).",
    ),
    target: list[float] = typer.Option(
        None, "--target", help="Budget to predict the score at, e.g. 1e12; repeatable."
    ),
    metric: str = typer.Option(
        "average", "--metric", help="average, opencompass_average, or a benchmark name."
    ),
    out: Path = typer.Option(
        None, "--out", help="PNG plot path (default: scaling_fit.png next to the first results file)."
    ),
) -> None:
    """Fit score = a + b*ln(budget) over checkpoints; prints a, b, R^2, 95% intervals and predictions."""
    from sailvl.eval.scaling import fit_results

    first = results[0] if results[0].is_dir() else results[0].parent
    report = fit_results(results, x, target or [], metric, out or first / "scaling_fit.png")
    fit = report["fit"]
    typer.echo(f"score = {fit['a']:.4f} + {fit['b']:.4f} * ln({x})   R^2 = {fit['r2']:.4f}   n = {fit['n']}")
    typer.echo(
        f"a in [{fit['a_interval'][0]:.4f}, {fit['a_interval'][1]:.4f}], b in [{fit['b_interval'][0]:.4f}, {fit['b_interval'][1]:.4f}] (95%)"
    )
    for pred in fit["predictions"]:
        band = "" if pred["low"] is None else f"  [{pred['low']:.2f}, {pred['high']:.2f}]"
        typer.echo(f"at {pred['x']:.3g} {x}: {pred['score']:.2f}{band}")
    typer.echo(f"plot written to {report['plot']}")
    typer.echo(json.dumps(report["fit"]))


@data_app.command("quick-eval")
def quick_eval_command(
    recipe: str = typer.Argument(
        ..., help="Training recipe (file or shipped name) whose stage each trial runs."
    ),
    overrides: list[str] = typer.Argument(
        None, help="key=value recipe overrides, e.g. vars.model_dir=runs/tiny-model"
    ),
    candidate: list[Path] = typer.Option(
        ..., "--candidate", help="Candidate data source (JSONL); repeatable, order matters for incremental."
    ),
    bench: list[str] = typer.Option(
        ..., "--bench", help="Benchmark name or .tsv path scored after each trial; repeatable."
    ),
    protocol: str = typer.Option(
        "quality",
        "--protocol",
        help="quality (rank candidates alone), composition (halve one task format at a time) or incremental "
        "(add one at a time).",
    ),
    group_by: str = typer.Option(
        "format", "--group-by", help="composition: record field that names the task format group."
    ),
    fraction: float = typer.Option(
        0.5, "--fraction", help="composition: share of a group's records kept when it is cut."
    ),
    base: list[Path] = typer.Option(
        None, "--base", help="incremental: sources always kept (the starting mixture)."
    ),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Directory holding benchmark TSVs named by --bench."
    ),
    stage: str = typer.Option(None, "--stage", help="Recipe stage to train (default: the last)."),
    samples: int = typer.Option(
        None, "--samples", help="Training samples per trial (default: the stage budget)."
    ),
    tolerance: float = typer.Option(
        0.0, "--tolerance", help="incremental: keep a candidate if the score drops by at most this."
    ),
    metric: str = typer.Option("average", "--metric", help="Score compared: average or a benchmark name."),
    limit: int = typer.Option(None, "--limit", help="Only the first N rows of each benchmark."),
    out: Path = typer.Option(
        Path("runs/quick-eval"), "--out", help="Output directory (one subdirectory per trial)."
    ),
) -> None:
    """SAIL-VL SFT data selection: train the same budget per trial, evaluate, rank or keep/drop."""
    from sailvl.errors import SailvlError
    from sailvl.eval.quick_eval import (
        bench_scorer,
        composition_eval,
        incremental_eval,
        quality_eval,
        recipe_trainer,
        source_entry,
    )

    if protocol not in ("quality", "composition", "incremental"):
        raise SailvlError(f"--protocol must be quality, composition or incremental, got {protocol!r}")
    train = recipe_trainer(recipe, overrides or [], stage, samples)
    score = bench_scorer(bench, data_dir, metric, limit=limit)
    candidates = [source_entry(p) for p in candidate]
    if protocol == "quality":
        report = quality_eval(candidates, out, train, score)
    elif protocol == "composition":
        report = composition_eval(candidates, out, train, score, group_by, fraction)
    else:
        report = incremental_eval(
            [source_entry(p) for p in base or []], candidates, out, train, score, tolerance
        )
    typer.echo(json.dumps(report, indent=2))
