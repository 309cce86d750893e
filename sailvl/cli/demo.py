"""`sailvl demo`: the whole SAIL-VL loop on synthetic data, tiny model, CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from sailvl.cli.app import app


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output directory (world, runs, report)."),
    quick: bool = typer.Option(False, "--quick", help="A shrunken demo (smaller world and budgets) for CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the world and of every training run."),
    base: Path | None = typer.Option(
        None,
        "--base",
        help="Start from this pretrained base's model directory (`sailvl experiment base`; default: the shipped "
        "seed-1 base).",
    ),
    random_start: bool = typer.Option(
        False, "--random-start", help="Start from a random tiny model instead of a pretrained base."
    ),
    subprocesses: bool = typer.Option(
        False,
        "--subprocesses",
        help="Run each step's `sailvl` command in its own process (default: in this one, which skips ~5 s of "
        "start-up per step; logs and figures are the same).",
    ),
) -> None:
    """Synthesise a world, curate it, train tiny SAILViT from a pretrained base, evaluate, and write
    OUT/report/report.md (+ .html)."""
    import json
    import time

    from rich.console import Console
    from rich.table import Table

    from sailvl.cli.app import main
    from sailvl.demo.pipeline import SHIPPED_BASE, run_demo
    from sailvl.demo.report import accuracy_table
    from sailvl.errors import SailvlError

    if random_start and base is not None:
        raise SailvlError("--base and --random-start exclude each other: give one")
    if not random_start and base is None:
        base = SHIPPED_BASE
    start = time.perf_counter()
    report = run_demo(out, quick=quick, seed=seed, base=base, invoke=None if subprocesses else main)
    summary = json.loads((report.parent / "summary.json").read_text())
    table = Table(title="held-out accuracy of the final model, % (chance)")
    header, rows = accuracy_table(summary["tasks"], summary["task_by_benchmark"])
    for col in header:
        table.add_column(col, justify="left" if col == "task" else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    typer.echo(f"report: {report} (and {report.with_suffix('.html')})")
    typer.echo(f"total time: {(time.perf_counter() - start) / 60:.1f} min")
