"""`sailvl curate PIPELINE.yaml [key=value ...]`, `sailvl curate report RUN_DIR`, `sailvl curate judge-eval`,
`sailvl curate judge-calibrate`, `sailvl bench curate`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sailvl.cli.app import app, bench_app
from sailvl.errors import SailvlError


@app.command(
    "curate",
    help="Run a curation pipeline: `sailvl curate PIPELINE.yaml key=value ...` (overrides optional; rerun to resume); "
    "or print a run's funnel and write its plots: `sailvl curate report RUN_DIR`; "
    "or measure a judge on labelled pairs: `sailvl curate judge-eval JUDGE_DIR JUDGE.jsonl [OUT.json] [key=value ...]` "
    "(judge step params, e.g. ita_method=likelihood); "
    "or fit the likelihood judge's threshold on its training pairs and save it in JUDGE_DIR: "
    "`sailvl curate judge-calibrate JUDGE_DIR TRAIN_JUDGE.jsonl [OUT.json]`.",
)
def curate(
    target: str = typer.Argument(
        ...,
        metavar="PIPELINE.yaml|report|judge-eval|judge-calibrate",
        help="Pipeline YAML, 'report', 'judge-eval' or 'judge-calibrate'.",
    ),
    args: list[str] = typer.Argument(None, metavar="key=value...|RUN_DIR", help="Overrides, or the run dir."),
) -> None:
    args = list(args or [])
    if target == "report":
        if len(args) != 1:
            raise SailvlError("usage: sailvl curate report RUN_DIR")
        from sailvl.curation.report import format_funnel, write_report

        report = write_report(args[0])
        typer.echo(format_funnel(report))
        typer.echo("plots: " + ", ".join(report["plots"]))
        return
    if target in ("judge-eval", "judge-calibrate"):
        typer.echo(json.dumps(_judge_command(target, args), indent=1))
        return
    from sailvl.curation.config import load_pipeline
    from sailvl.curation.executors import run_pipeline

    cfg = load_pipeline(target, args)
    manifest = run_pipeline(cfg)
    typer.echo(
        f"{manifest['input_records']} records in, {manifest['kept']} kept, {manifest['rejected']} rejected; "
        f"run dir {cfg.output_dir} (see `sailvl curate report {cfg.output_dir}`)"
    )


JUDGE_USAGE = (
    "usage: sailvl curate {command} JUDGE_MODEL_DIR JUDGE.jsonl [OUT.json] [key=value ...] "
    "(keys: judge step params, e.g. ita_method=likelihood min_alignment=-1.5 batch_size=32)"
)


def _judge_command(command: str, args: list[str]) -> dict:
    """`judge-eval` (measure a judge on labelled pairs) or `judge-calibrate` (pick the likelihood judge's
    threshold on labelled pairs and save it in the judge dir); writes OUT.json when given."""
    from sailvl.config.base import apply_overrides
    from sailvl.curation.judge import calibrate_judge, measure_judge_file

    positional = [a for a in args if "=" not in a]
    if len(positional) not in (2, 3):
        raise SailvlError(JUDGE_USAGE.format(command=command))
    if not Path(positional[1]).is_file():
        raise SailvlError(f"judge pairs file {positional[1]} does not exist (expected a world's judge.jsonl)")
    params = apply_overrides({"batch_size": 32}, [a for a in args if "=" in a])
    run = measure_judge_file if command == "judge-eval" else calibrate_judge
    result = {"model": positional[0], "pairs": positional[1], **run(positional[0], positional[1], **params)}
    if len(positional) == 3:
        Path(positional[2]).parent.mkdir(parents=True, exist_ok=True)
        Path(positional[2]).write_text(json.dumps(result, indent=1))
    return result


@bench_app.command("curate", help="Records/s of the cheap curation steps vs same-run baselines.")
def bench_curate(
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
    images: int = typer.Option(200, help="Number of 640x480 JPEGs to time."),
    hashes: int = typer.Option(3000, help="Number of pHashes in the dedup-resolution timing."),
) -> None:
    from sailvl.curation.bench import bench_curation

    result = bench_curation(images, hashes)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    for name, row in result["steps"].items():
        typer.echo(
            f"{name:<28}{row['records_per_s']:>10.1f} rec/s   baseline ({row['baseline']}) "
            f"{row['baseline_records_per_s']:.1f} rec/s   x{row['speedup']}"
        )
