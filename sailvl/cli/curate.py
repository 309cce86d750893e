"""`sailvl curate run PIPELINE.yaml [key=value ...]` (also `sailvl curate PIPELINE.yaml ...`),
`sailvl curate report RUN_DIR`, `sailvl curate judge-eval`, `sailvl curate judge-calibrate`,
`sailvl bench curate`."""

from __future__ import annotations

import json
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from sailvl.cli.app import app, bench_app
from sailvl.errors import SailvlError


class _RunByDefault(TyperGroup):
    """`sailvl curate PIPELINE.yaml ...` means `sailvl curate run PIPELINE.yaml ...` (the original form)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


curate_app = typer.Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    help="Run a curation pipeline (`sailvl curate PIPELINE.yaml key=value ...` = `sailvl curate run ...`), "
    "report on a run, or measure and calibrate a judge.",
)
app.add_typer(curate_app, name="curate")


@curate_app.command("run", help="Run (or resume: rerun the same command) a curation pipeline.")
def curate_run(
    pipeline: str = typer.Argument(..., metavar="PIPELINE.yaml", help="Pipeline YAML."),
    overrides: list[str] = typer.Argument(None, metavar="key=value...", help="Config overrides."),
) -> None:
    from sailvl.curation.config import load_pipeline
    from sailvl.curation.executors import run_pipeline

    cfg = load_pipeline(pipeline, list(overrides or []))
    manifest = run_pipeline(cfg)
    typer.echo(
        f"{manifest['input_records']} records in, {manifest['kept']} kept, {manifest['rejected']} rejected; "
        f"run dir {cfg.output_dir} (see `sailvl curate report {cfg.output_dir}`)"
    )


@curate_app.command("report", help="Print a run's funnel and write its plots to RUN_DIR/report/.")
def curate_report(run_dir: str = typer.Argument(..., metavar="RUN_DIR", help="A curation run dir.")) -> None:
    from sailvl.curation.report import format_funnel, write_report

    report = write_report(run_dir)
    typer.echo(format_funnel(report))
    typer.echo("plots: " + ", ".join(report["plots"]))


_JUDGE_DIR = typer.Argument(..., metavar="JUDGE_DIR", help="Judge model directory.")
_PAIRS = typer.Argument(..., metavar="JUDGE.jsonl", help="Labelled pairs (a synthetic world's judge.jsonl).")
_OUT = typer.Option(None, "--out", help="Also write the result as JSON here.")
_PARAMS = typer.Argument(
    None, metavar="key=value...", help="Judge step params, e.g. ita_method=likelihood batch_size=32."
)


@curate_app.command("judge-eval", help="Keep / reject rates and per-source rejection of a judge on pairs.")
def judge_eval(
    judge_dir: str = _JUDGE_DIR, pairs: str = _PAIRS, params: list[str] = _PARAMS, out: str = _OUT
) -> None:
    from sailvl.curation.judge_quality import measure_judge_file

    typer.echo(json.dumps(_judge_command(measure_judge_file, judge_dir, pairs, params, out), indent=1))


@curate_app.command(
    "judge-calibrate", help="Fit the likelihood judge's threshold on labelled pairs; saved in JUDGE_DIR."
)
def judge_calibrate(
    judge_dir: str = _JUDGE_DIR, pairs: str = _PAIRS, params: list[str] = _PARAMS, out: str = _OUT
) -> None:
    from sailvl.curation.judge_quality import calibrate_judge

    typer.echo(json.dumps(_judge_command(calibrate_judge, judge_dir, pairs, params, out), indent=1))


def _judge_command(run, judge_dir: str, pairs: str, params: list[str] | None, out: str | None) -> dict:
    from sailvl.config.base import apply_overrides

    if not Path(pairs).is_file():
        raise SailvlError(f"judge pairs file {pairs} does not exist (expected a world's judge.jsonl)")
    bad = [p for p in params or [] if "=" not in p]
    if bad:
        raise SailvlError(f"judge parameter {bad[0]!r} is not key=value (e.g. ita_method=likelihood)")
    kwargs = apply_overrides({"batch_size": 32}, list(params or []))
    result = {"model": judge_dir, "pairs": pairs, **run(judge_dir, pairs, **kwargs)}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1))
    return result


@bench_app.command(
    "curate",
    help="Records/s of the cheap curation steps vs same-run baselines; with --model-steps, of recaption and "
    "judge batched vs one record at a time (`--preset sailvl-2b --backend vllm|transformers` on a GPU).",
)
def bench_curate(
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
    images: int = typer.Option(200, help="Number of 640x480 JPEGs to time."),
    hashes: int = typer.Option(3000, help="Number of pHashes in the dedup-resolution timing."),
    model_steps: bool = typer.Option(False, "--model-steps", help="Time recaption and judge instead."),
    records: int = typer.Option(32, help="--model-steps: records per timing."),
    batch_size: int = typer.Option(16, help="--model-steps: records per batch of the batched path."),
    max_new_tokens: int = typer.Option(16, help="--model-steps: recaption length (tokens)."),
    preset: str = typer.Option("tiny", help="--model-steps: random-init model preset (e.g. sailvl-2b)."),
    backend: str = typer.Option("transformers", help="--model-steps: generation backend (vllm: GPU)."),
    repeats: int = typer.Option(
        3, "--repeats", min=1, help="--model-steps: interleaved timings of both paths; medians and spread."
    ),
) -> None:
    from sailvl.bench.curate import bench_curation, bench_model_steps

    if model_steps:
        result = bench_model_steps(records, batch_size, max_new_tokens, preset, backend, repeats=repeats)
    else:
        result = bench_curation(images, hashes)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    for name, row in result["steps"].items():
        typer.echo(
            f"{name:<28}{row['records_per_s']:>10.1f} rec/s   baseline ({row['baseline']}) "
            f"{row['baseline_records_per_s']:.1f} rec/s   x{row['speedup']}"
        )
