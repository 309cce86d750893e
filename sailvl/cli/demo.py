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
) -> None:
    """Synthesise a world, curate it, train tiny SAILViT, evaluate, and write OUT/report/report.md (+ .html)."""
    import json
    import time

    from rich.console import Console
    from rich.table import Table

    from sailvl.demo.pipeline import run_demo

    start = time.perf_counter()
    report = run_demo(out, quick=quick, seed=seed)
    summary = json.loads((report.parent / "summary.json").read_text())
    table = Table(title="held-out accuracy of the final model (%)")
    for col in ("task", "accuracy", "chance", "items"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for task, row in summary["tasks"].items():
        table.add_row(task, f"{row['accuracy']:.1f}", f"{row['chance']:.1f}", str(row["n"]))
    Console().print(table)
    typer.echo(f"report: {report} (and {report.with_suffix('.html')})")
    typer.echo(f"total time: {(time.perf_counter() - start) / 60:.1f} min")
