"""`sailvl bench gpu`: every GPU benchmark in one command (the other bench commands live with their areas)."""

from __future__ import annotations

from pathlib import Path

import typer

from sailvl.cli.app import bench_app


@bench_app.command("gpu")
def bench_gpu_command(
    out: Path = typer.Option(..., "--out", help="Directory for summary.json, summary.md, logs.txt."),
    plan: str = typer.Option(
        "gpu", "--plan", help="gpu (the BENCHMARKS.md GPU figures) or smoke (tiny, CPU)."
    ),
    budget_s: float = typer.Option(
        480.0, "--budget-s", help="Seconds for the whole plan; a benchmark that no longer fits is skipped."
    ),
    only: list[str] = typer.Option(None, "--only", help="Run only this benchmark of the plan; repeatable."),
) -> None:
    """Run a plan of `sailvl bench` commands, each in its own process with a time limit, and summarise them."""
    from sailvl.bench.gpu import run_plan

    summary = run_plan(plan, out, budget_s, only or None)
    for row in summary["benchmarks"]:
        typer.echo(
            f"{row['name']:<32}{row['status']:<9}{row.get('seconds', '')!s:>7}  {row.get('reason', '')}"
        )
    typer.echo(f"summary: {Path(out) / 'summary.md'}")
